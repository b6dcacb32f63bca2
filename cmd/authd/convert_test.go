package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/internal/testenv"
)

// authd convert on deploy/examples (docs/operations.md §2.1): every
// example converts; with -dovecot (authd's own settings left out) Dovecot
// 2.4.1's doveconf -n accepts the result as it is; and for the
// passwd-file, SQL and LDAP examples the differential against Dovecot
// 2.4's auth (dovecot24_diff_test.go) passes with the converted file, its
// paths and servers pointed at the test's own.

// exampleCopy copies deploy/examples into a new directory with
// /etc/authd/ replaced by it, and edit applied to each file's text.
func exampleCopy(t *testing.T, edit func(name, text string) string) string {
	t.Helper()
	dir := testenv.Dir(t)
	files, err := filepath.Glob("../../deploy/examples/*")
	if err != nil || len(files) < 7 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "/etc/authd/", dir+"/")
		if edit != nil {
			text = edit(filepath.Base(f), text)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// convertFile runs authd convert on path with extra flags.
func convertFile(t *testing.T, path string, flags ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"convert", "-c", path}, flags...), nil, &out, &errb); code != 0 {
		t.Fatalf("authd convert %s: exit %d\n%s", filepath.Base(path), code, errb.String())
	}
	return out.String()
}

// environment are the lines of a converted file that belong to the
// server it runs on, not to the auth configuration the differential
// compares: base_dir and service auth (its sockets, for Postfix and
// Dovecot's login processes), and the version, which both harnesses write.
var environment = regexp.MustCompile(`^(service auth) \{$|^(base_dir|dovecot_config_version) = `)

// authPart is a converted file without environment. The converter's
// output puts one setting or section opening per line, a section closed
// by a lone `}` at its depth.
func authPart(conf string) string {
	var out []string
	skip := false
	for _, l := range strings.Split(conf, "\n") {
		switch {
		case skip:
			skip = l != "}"
		case environment.MatchString(l) && strings.HasSuffix(l, "{"):
			skip = true
		case environment.MatchString(l):
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestConvertExamples converts every example; the -dovecot conversion
// goes to Dovecot 2.4.1's doveconf -n as it is.
func TestConvertExamples(t *testing.T) {
	dir := exampleCopy(t, nil)
	c := testenv.MountTrixie(t, dir)
	files, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
	if len(files) != 5 {
		t.Fatalf("%d examples", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			conv := convertFile(t, f)
			if !strings.HasPrefix(conv, "dovecot_config_version = 2.4.1\n") || !strings.Contains(conv, "\ngrpc {\n") {
				t.Fatalf("not 2.4, or authd's grpc { } missing:\n%s", conv)
			}
			for _, l := range strings.Split(conv, "\n") {
				if l = strings.TrimSpace(l); !strings.HasPrefix(l, "#") && regexp.MustCompile(`%[a-zL]`).MatchString(l) {
					t.Errorf("a 2.3 variable is left: %s", l)
				}
			}
			dc := convertFile(t, f, "-dovecot")
			if strings.Contains(dc, "grpc {") || strings.Contains(dc, "metrics {") {
				t.Errorf("-dovecot kept authd's sections:\n%s", dc)
			}
			// Dovecot's main file must also set dovecot_storage_version, a
			// choice about mail storage that convert leaves to the admin.
			path := f + ".24"
			dc = strings.Replace(dc, "\n", "\ndovecot_storage_version = 2.4.1\n", 1)
			if err := os.WriteFile(path, []byte(dc), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			out, code, err := c.Run(ctx, "/usr/bin/doveconf", "-n", "-c", path)
			if err != nil || code != 0 {
				t.Fatalf("doveconf -n rejects the conversion (exit %d, %v):\n%s\n--- converted:\n%s", code, err, out, dc)
			}
		})
	}
}

// TestConvertExamplesDifferential converts the passwd-file, MariaDB,
// PostgreSQL and OpenLDAP examples, with their files and servers pointed
// at the test's, and runs the differential on the result.
func TestConvertExamplesDifferential(t *testing.T) {
	t.Run("passwd-file", func(t *testing.T) {
		dir := exampleCopy(t, func(_, text string) string {
			return strings.ReplaceAll(text, "uid=vmail gid=vmail", "uid=nobody gid=nogroup")
		})
		sha := doveadmHash(t, "SHA512-CRYPT", "alicepw")
		users := "alice@example.com:" + sha + ":5000:5000::/home/alice::userdb_quota_rule=*:storage=1G\n" +
			"bob@example.com:{PLAIN}bobpw::::::\n"
		if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
			t.Fatal(err)
		}
		runDiff24(t, diff24{conf: authPart(convertFile(t, filepath.Join(dir, "passwd-file.conf"), "-dovecot")), binds: []string{dir},
			logins: [][2]string{{"alice@example.com", "alicepw"}, {"Bob@Example.com", "bobpw"}},
			users:  []string{"alice@example.com", "bob@example.com"}})
	})
	t.Run("mariadb", func(t *testing.T) { convertedMariaDB(t) })
	t.Run("postgresql", func(t *testing.T) { convertedPostgreSQL(t) })
	t.Run("openldap", func(t *testing.T) { convertedOpenLDAP(t) })
}

func convertedMariaDB(t *testing.T) {
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{Database: "mail"})
	sha := strings.TrimPrefix(doveadmHash(t, "SHA512-CRYPT", "alicepw"), "{SHA512-CRYPT}")
	m.Exec(t, `USE mail;
CREATE TABLE users (username VARCHAR(64), domain VARCHAR(64), password VARCHAR(255),
  home VARCHAR(255), uid INT, gid INT, active INT, PRIMARY KEY (username, domain));
INSERT INTO users VALUES
  ('alice', 'example.com', '`+sha+`', '/home/alice', 5000, 5000, 1),
  ('bob', 'example.com', '{PLAIN}bobpw', '/home/bob', 5001, 5001, 1),
  ('carol', 'example.com', '{PLAIN}carolpw', '/home/carol', 5002, 5002, 0);`)
	connect := fmt.Sprintf("connect = host=127.0.0.1 port=%d dbname=%s user=%s password=%s", m.Port, m.Database, m.User, m.Password)
	dir := exampleCopy(t, func(name, text string) string {
		if name != "dovecot-sql.conf.ext" {
			return text
		}
		return regexp.MustCompile(`(?m)^connect = .*$`).ReplaceAllString(text, connect)
	})
	runDiff24(t, diff24{conf: authPart(convertFile(t, filepath.Join(dir, "mariadb.conf"), "-dovecot")),
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"bob@example.com", "bobpw"}},
		users:  []string{"alice@example.com", "bob@example.com"}})
}

func convertedPostgreSQL(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{Database: "mail"})
	sha := strings.TrimPrefix(doveadmHash(t, "SHA512-CRYPT", "alicepw"), "{SHA512-CRYPT}")
	pg.Exec(t, `CREATE TABLE users (username TEXT, domain TEXT, password TEXT, home TEXT, uid INT, gid INT,
  active BOOLEAN, PRIMARY KEY (username, domain));
INSERT INTO users VALUES
  ('alice', 'example.com', '`+sha+`', '/home/alice', 5000, 5000, true),
  ('bob', 'example.com', '{PLAIN}bobpw', '/home/bob', 5001, 5001, true),
  ('carol', 'example.com', '{PLAIN}carolpw', '/home/carol', 5002, 5002, false);`)
	// Over TCP: Dovecot in the root and authd outside reach it alike.
	connect := fmt.Sprintf("connect = host=127.0.0.1 port=%d dbname=%s user=%s password=%s", pg.Port, pg.Database, pg.User, pg.Password)
	dir := exampleCopy(t, func(name, text string) string {
		if name != "dovecot-pgsql.conf.ext" {
			return text
		}
		return regexp.MustCompile(`(?m)^connect = .*$`).ReplaceAllString(text, connect)
	})
	runDiff24(t, diff24{conf: authPart(convertFile(t, filepath.Join(dir, "postgresql.conf"), "-dovecot")),
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"bob@example.com", "bobpw"}},
		users:  []string{"alice@example.com", "bob@example.com"}})
}

// ldapSchema gives the example directory's mailHome attribute.
const ldapSchema = `attributetype ( 1.3.6.1.4.1.32473.1.1 NAME 'mailHome'
  EQUALITY caseExactIA5Match SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.32473.2.1 NAME 'mailUser' SUP top AUXILIARY MAY ( mailHome ) )
`

func convertedOpenLDAP(t *testing.T) {
	ldif := realserver.ExampleLDIF(testenv.Slappasswd(t, "-s", "servicepw"))
	for _, u := range []string{"alice", "bob"} {
		ldif += fmt.Sprintf(`dn: uid=%[1]s,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: mailUser
uid: %[1]s
cn: %[1]s
sn: %[1]s
mail: %[1]s@example.com
userPassword: %[2]s
mailHome: /home/%[1]s

`, u, testenv.Slappasswd(t, "-s", u+"pw"))
	}
	s := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: ldif, Schema: ldapSchema})
	dir := exampleCopy(t, func(name, text string) string {
		switch name {
		case "dovecot-ldap.conf.ext":
			// The test's slapd, without TLS; everything else as written.
			text = regexp.MustCompile(`(?m)^uris = .*$`).ReplaceAllString(text, "uris = "+s.URI)
			text = regexp.MustCompile(`(?m)^(tls|tls_ca_cert_file|tls_require_cert) = .*$`).ReplaceAllString(text, "")
			return strings.Replace(text, "dnpass = CHANGE-ME", "dnpass = servicepw", 1)
		case "openldap.conf":
			return strings.ReplaceAll(text, "uid=vmail gid=vmail", "uid=nobody gid=nogroup")
		}
		return text
	})
	runDiff24(t, diff24{conf: authPart(convertFile(t, filepath.Join(dir, "openldap.conf"), "-dovecot")),
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"bob@example.com", "bobpw"}},
		users:  []string{"alice@example.com", "bob@example.com"}})
}

// TestREADME24Doveconf: Dovecot 2.4.1's doveconf -n accepts the README's
// 2.4 examples (TestREADMEConfigExamples loads them into authd).
func TestREADME24Doveconf(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := testenv.Dir(t)
	c := testenv.MountTrixie(t, dir)
	n := 0
	for _, body := range fencedBlocks(string(data)) {
		if !strings.Contains(body, "\ndovecot_config_version = ") {
			continue
		}
		n++
		path := filepath.Join(dir, fmt.Sprintf("readme%d.conf", n))
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, code, err := c.Run(ctx, "/usr/bin/doveconf", "-n", "-c", path)
		cancel()
		if err != nil || code != 0 {
			t.Errorf("doveconf -n rejects README 2.4 example %d (exit %d, %v):\n%s\n%s", n, code, err, out, body)
		}
	}
	if n != 6 {
		t.Errorf("%d examples", n)
	}
}
