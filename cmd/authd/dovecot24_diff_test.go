package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/internal/tabescape"
	"github.com/authd-project/authd/internal/testenv"
)

// The differential of Dovecot 2.4 configurations (docs/testing.md §4.6):
// the same 2.4 auth configuration is given to Dovecot 2.4.1's own auth
// process (in the Debian 13 root) and to authd, and both are asked the
// same questions over the same protocol: every user's login with the right
// password, with a wrong one, a login of an unknown user, and the userdb
// lookup of every user and of the unknown one. The answers (the reply and
// its fields) must be equal.

// diff24 is one configuration to compare.
type diff24 struct {
	// conf is the auth part in 2.4 syntax, without dovecot_config_version
	// (the harness and runDiff24 write it) and without service auth or
	// authd's own sections.
	conf string
	// binds are the directories conf refers to, mounted in the root.
	binds []string
	// logins are name/password pairs that must succeed; users are the
	// names whose userdb lookup must succeed.
	logins [][2]string
	users  []string
	// unknownUserdb is Dovecot's answer to the userdb lookup of an
	// unknown user when not NOTFOUND (FAIL with prefetch the only userdb).
	unknownUserdb string
}

// diffUnknown is a user no configuration knows.
const diffUnknown = "nosuch@example.com"

// diffOverrides go after the configuration on both sides: no failure
// delay (the answers, not their timing, are compared), PLAIN allowed
// without TLS.
const diffOverrides = "\nauth_failure_delay = 0\nauth_allow_cleartext = yes\n"

// runDiff24 starts both servers on c and compares their answers.
func runDiff24(t *testing.T, c diff24) {
	t.Helper()
	dc := testenv.StartDovecot24(t, testenv.Dovecot24Options{Config: c.conf + diffOverrides, Binds: c.binds})
	p := startAuthd(t, "dovecot_config_version = 2.4.1\n"+c.conf+diffOverrides+`
base_dir = $DIR/run
# Wrong passwords are asked on purpose: authd's brute-force defence stays
# out of the comparison.
penalty {
  enabled = no
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
`, "run/auth-client", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ask := func(t *testing.T, client, userdb string) map[string]string {
		return diffAnswers(ctx, t, c, client, userdb)
	}
	want := ask(t, dc.Socket("auth-client"), dc.Socket("auth-userdb"))
	got := ask(t, p.path("run/auth-client"), p.path("run/auth-userdb"))
	checkDiffSane(t, c, want, readFile(dc.Log))
	for _, q := range slices.Sorted(maps.Keys(want)) {
		if got[q] != want[q] {
			t.Errorf("%s:\n  Dovecot 2.4: %s\n  authd:       %s", q, want[q], got[q])
		}
	}
	if t.Failed() {
		t.Logf("Dovecot 2.4 log:\n%s", readFile(dc.Log))
	}
}

// diffAnswers asks one server every question: query name -> answer.
func diffAnswers(ctx context.Context, t *testing.T, c diff24, client, userdb string) map[string]string {
	t.Helper()
	ac, err := dovecot.DialAuth(ctx, client)
	if err != nil {
		t.Fatalf("%s: %v", client, err)
	}
	defer ac.Close()
	out := map[string]string{}
	auth := func(q, user, pass string) {
		r, err := ac.Plain(ctx, []string{"service=imap", "protocol=imap", "rip=192.0.2.7"}, "", user, pass)
		if err != nil {
			t.Fatalf("%s: %s: %v", client, q, err)
		}
		out[q] = answer(r.Cmd, r.Fields)
	}
	for _, l := range c.logins {
		auth("login "+l[0], l[0], l[1])
		auth("wrong password "+l[0], l[0], l[1]+"x")
	}
	auth("unknown user", diffUnknown, "whatever")
	for _, u := range append(slices.Clone(c.users), diffUnknown) {
		cmd, fields, err := userLookup(ctx, userdb, u)
		if err != nil {
			t.Fatalf("%s: userdb %s: %v", userdb, u, err)
		}
		out["userdb "+u] = answer(cmd, fields)
	}
	return out
}

// answer is a reply in a comparable form: the command and its fields,
// sorted (their order carries no meaning).
func answer(cmd string, fields []string) string {
	f := slices.Clone(fields)
	slices.Sort(f)
	return cmd + " " + strings.Join(f, " | ")
}

// checkDiffSane fails when Dovecot's own answers are not the expected
// ones: a configuration that both servers fail the same way proves nothing.
func checkDiffSane(t *testing.T, c diff24, want map[string]string, log string) {
	t.Helper()
	for q, a := range want {
		ok := strings.HasPrefix(q, "login ") && strings.HasPrefix(a, "OK ") ||
			strings.HasPrefix(q, "wrong password ") && strings.HasPrefix(a, "FAIL ") ||
			q == "unknown user" && strings.HasPrefix(a, "FAIL ") ||
			q == "userdb "+diffUnknown && strings.HasPrefix(a, cmp.Or(c.unknownUserdb, "NOTFOUND")) ||
			strings.HasPrefix(q, "userdb ") && q != "userdb "+diffUnknown && strings.HasPrefix(a, "USER ")
		if !ok {
			t.Errorf("Dovecot 2.4 answers %s with %s: the configuration does not work as the test means\n%s", q, a, log)
		}
	}
	if len(want) != 2*len(c.logins)+len(c.users)+2 {
		t.Errorf("asked %d questions", len(want))
	}
}

// userLookup asks a userdb socket (master protocol) for user: USER,
// NOTFOUND or FAIL and the reply's fields after the id (and, for USER,
// after the name).
func userLookup(ctx context.Context, sock, user string) (string, []string, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(nc, "VERSION\t1\t0\nUSER\t1\t%s\tservice=imap\tprotocol=imap\n", user); err != nil {
		return "", nil, err
	}
	sc := bufio.NewScanner(nc)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) < 2 || parts[1] != "1" {
			continue
		}
		switch parts[0] {
		case "USER":
			return "USER", unescapeAll(parts[3:]), nil
		case "NOTFOUND", "FAIL":
			return parts[0], unescapeAll(parts[2:]), nil
		}
	}
	return "", nil, fmt.Errorf("no reply (%v)", sc.Err())
}

func unescapeAll(s []string) []string {
	out := make([]string, len(s))
	for i, f := range s {
		out[i] = tabescape.Unescape(f)
	}
	return out
}

// TestDovecot24Differential compares Dovecot 2.4's auth and authd on the
// same 2.4 configuration for a passwd-file, MariaDB, PostgreSQL, and slapd
// (password lookups and authentication binds).
func TestDovecot24Differential(t *testing.T) {
	t.Run("passwd-file", func(t *testing.T) { runDiff24(t, passwdFileDiff24(t)) })
	t.Run("mariadb", func(t *testing.T) { runDiff24(t, mariaDBDiff24(t)) })
	t.Run("postgresql", func(t *testing.T) { runDiff24(t, postgresDiff24(t)) })
	t.Run("ldap-password", func(t *testing.T) { runDiff24(t, ldapDiff24(t, false)) })
	t.Run("ldap-bind", func(t *testing.T) { runDiff24(t, ldapDiff24(t, true)) })
}

func passwdFileDiff24(t *testing.T) diff24 {
	dir := testenv.Dir(t)
	sha := doveadmHash(t, "SHA512-CRYPT", "alicepw")
	users := "alice@example.com:" + sha + ":1000:1000::/home/alice::userdb_quota_rule=*:storage=1G\n" +
		"bob@example.com:{PLAIN}bobpw:1001:1001::/home/bob::\n" +
		// No {SCHEME}: the default_password_scheme applies.
		"carol@example.com:" + strings.TrimPrefix(sha, "{SHA512-CRYPT}") + ":1002:1002:::: \n" +
		"dave@example.com:{PLAIN}davepw::::::userdb_mail=mbox:~/mail\n"
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(`
auth_mechanisms = plain login
passdb passwd-file {
  passwd_file_path = $D/users
  default_password_scheme = SHA512-CRYPT
}
userdb passwd-file {
  passwd_file_path = $D/users
  fields {
    home:default = /var/vmail/%{user | domain}/%{user | username}
    uid:default = 5000
    gid:default = 5000
    mail = maildir:~/Maildir
  }
}
`, "$D", dir)
	return diff24{conf: conf, binds: []string{dir},
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"Bob@Example.COM", "bobpw"}, {"carol@example.com", "alicepw"}, {"dave@example.com", "davepw"}},
		users:  []string{"alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com"}}
}

func mariaDBDiff24(t *testing.T) diff24 {
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{Database: "mail"})
	sha := strings.TrimPrefix(doveadmHash(t, "SHA256-CRYPT", "alicepw"), "{SHA256-CRYPT}")
	m.Exec(t, `USE mail;
CREATE TABLE users (username VARCHAR(64), domain VARCHAR(64), password VARCHAR(255),
  home VARCHAR(255), uid INT, gid INT, active INT, PRIMARY KEY (username, domain));
INSERT INTO users VALUES
  ('alice', 'example.com', '`+sha+`', '/home/alice', 1000, 1000, 1),
  ('bob', 'example.com', '{PLAIN}bobpw', '/home/bob', 1001, 1001, 1),
  ('carol', 'example.com', '{PLAIN}carolpw', '/home/carol', 1002, 1002, 0);`)
	conf := fmt.Sprintf(`
sql_driver = mysql
mysql 127.0.0.1 {
  port = %d
  user = %s
  password = %s
  dbname = %s
}
passdb sql {
  default_password_scheme = SHA256-CRYPT
  query = SELECT username AS user, password FROM users \
    WHERE username = '%%{user | username}' AND domain = '%%{user | domain}' AND active = 1
}
userdb sql {
  query = SELECT home, uid, gid FROM users \
    WHERE username = '%%{user | username}' AND domain = '%%{user | domain}'
}
`, m.Port, m.User, m.Password, m.Database)
	return diff24{conf: conf,
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"BOB@example.com", "bobpw"}},
		users:  []string{"alice@example.com", "bob@example.com", "carol@example.com"}}
}

// docExample24 is a file of internal/config/testdata/dovecot24-examples
// (the 2.4 documentation's examples) without its version lines, with
// each replacement applied (each must match).
func docExample24(t *testing.T, name string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile("../../internal/config/testdata/dovecot24-examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`(?m)^dovecot_(config|storage)_version = .*$`).ReplaceAllString(string(b), "")
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(text, repl[i]) {
			t.Fatalf("%s has no %q", name, repl[i])
		}
		text = strings.ReplaceAll(text, repl[i], repl[i+1])
	}
	return text
}

// TestDovecot24DocExamplesDifferential runs the differential on the 2.4
// documentation's examples that authd's tests load
// (internal/config/testdata/dovecot24-examples), pointed at the test's
// files and servers: they behave as in Dovecot 2.4's auth.
func TestDovecot24DocExamplesDifferential(t *testing.T) {
	t.Run("passwd-file", func(t *testing.T) {
		dir := testenv.Dir(t)
		sha := doveadmHash(t, "SHA512-CRYPT", "alicepw")
		os.MkdirAll(filepath.Join(dir, "domains", "example.org"), 0o755)
		os.WriteFile(filepath.Join(dir, "users"), []byte("alice@example.com:"+strings.TrimPrefix(sha, "{SHA512-CRYPT}")+
			":1000:1000::/home/alice::\nbob@example.com:{PLAIN}bobpw:1001:1001::::userdb_quota_rule=*:storage=2G\n"), 0o644)
		// The per-domain passdb looks up the user part.
		os.WriteFile(filepath.Join(dir, "domains", "example.org", "passwd"), []byte("dave:{PLAIN}davepw:1003:1003::::\n"), 0o644)
		runDiff24(t, diff24{conf: docExample24(t, "passwd-file.conf", "/etc/dovecot/", dir+"/"), binds: []string{dir},
			logins: [][2]string{{"alice@example.com", "alicepw"}, {"Bob@example.com", "bobpw"}, {"dave@example.org", "davepw"}},
			users:  []string{"alice@example.com", "bob@example.com"}})
	})
	t.Run("sql", func(t *testing.T) {
		d := mariaDBDiff24(t) // the same table
		port := regexp.MustCompile(`port = (\d+)`).FindStringSubmatch(d.conf)[1]
		user := regexp.MustCompile(`user = (\S+)`).FindStringSubmatch(d.conf)[1]
		pw := regexp.MustCompile(`password = (\S+)`).FindStringSubmatch(d.conf)[1]
		conf := docExample24(t, "sql.conf", "user = mailauth", "port = "+port+"\n  user = "+user, "password = secret", "password = "+pw)
		runDiff24(t, diff24{conf: conf, logins: d.logins, users: d.users})
	})
	for _, name := range []string{"ldap-password.conf", "ldap-bind.conf"} {
		t.Run(name, func(t *testing.T) {
			d := ldapDiff24(t, false)
			uri := regexp.MustCompile(`ldap_uris = (\S+)`).FindStringSubmatch(d.conf)[1]
			conf := docExample24(t, name, "cn=dovecot,dc=example,dc=com", "cn=authd,ou=services,dc=example,dc=com",
				"ldap_auth_dn_password = secret", "ldap_auth_dn_password = servicepw")
			conf = regexp.MustCompile(`(?m)^ldap_uris = .*$`).ReplaceAllString(conf, "ldap_uris = "+uri)
			c := diff24{conf: conf, logins: d.logins, users: d.users}
			if name == "ldap-password.conf" {
				// Its only userdb is prefetch: a lookup on its own is an
				// internal failure in Dovecot (docs/protocol.md §5.7).
				c.users, c.unknownUserdb = nil, "FAIL"
			}
			runDiff24(t, c)
		})
	}
}

// postgresDiff24 is mariaDBDiff24 with sql_driver = pgsql: a `pgsql HOST {
// parameters { } }` section, reached over TCP from inside the root and
// from outside alike.
func postgresDiff24(t *testing.T) diff24 {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{Database: "mail"})
	sha := strings.TrimPrefix(doveadmHash(t, "SHA256-CRYPT", "alicepw"), "{SHA256-CRYPT}")
	pg.Exec(t, `CREATE TABLE users (username TEXT, domain TEXT, password TEXT, home TEXT, uid INT, gid INT,
  active INT, PRIMARY KEY (username, domain));
INSERT INTO users VALUES
  ('alice', 'example.com', '`+sha+`', '/home/alice', 1000, 1000, 1),
  ('bob', 'example.com', '{PLAIN}bobpw', '/home/bob', 1001, 1001, 1),
  ('carol', 'example.com', '{PLAIN}carolpw', '/home/carol', 1002, 1002, 0);`)
	conf := fmt.Sprintf(`
sql_driver = pgsql
pgsql 127.0.0.1 {
  parameters {
    port = %d
    dbname = %s
    user = %s
    password = %s
  }
}
passdb sql {
  default_password_scheme = SHA256-CRYPT
  query = SELECT username AS user, password FROM users \
    WHERE username = '%%{user | username}' AND domain = '%%{user | domain}' AND active = 1
}
userdb sql {
  query = SELECT home, uid, gid FROM users \
    WHERE username = '%%{user | username}' AND domain = '%%{user | domain}'
}
`, pg.Port, pg.Database, pg.User, pg.Password)
	return diff24{conf: conf,
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"BOB@example.com", "bobpw"}},
		users:  []string{"alice@example.com", "bob@example.com", "carol@example.com"}}
}

// ldapDiff24 is the 2.4 documentation's LDAP setup: password lookups
// (the passdb reads userPassword) or authentication binds.
func ldapDiff24(t *testing.T, bind bool) diff24 {
	servicePW := "servicepw"
	ldif := realserver.ExampleLDIF(testenv.Slappasswd(t, "-s", servicePW))
	for i, u := range []string{"alice", "bob"} {
		ldif += fmt.Sprintf(`dn: uid=%[1]s,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: posixAccount
uid: %[1]s
cn: %[1]s
sn: %[1]s
mail: %[1]s@example.com
userPassword: %[2]s
uidNumber: %[3]d
gidNumber: %[3]d
homeDirectory: /home/%[1]s

`, u, testenv.Slappasswd(t, "-s", u+"pw"), 1000+i)
	}
	s := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: ldif})
	passdb := `passdb ldap {
  filter = (&(objectClass=posixAccount)(mail=%{user}))
  fields {
    user = %{ldap:mail}
    password = %{ldap:userPassword}
  }
}`
	if bind {
		// Dovecot 2.4.1 wants passdb_ldap_filter with bind_userdn too
		// (without it every login is an internal failure: "No
		// passdb_ldap_filter given"), though it binds without searching.
		passdb = `passdb ldap {
  bind = yes
  bind_userdn = uid=%{user | username},ou=people,dc=example,dc=com
  filter = (&(objectClass=posixAccount)(mail=%{user}))
}`
	}
	conf := fmt.Sprintf(`
ldap_uris = %s
ldap_auth_dn = cn=authd,ou=services,dc=example,dc=com
ldap_auth_dn_password = %s
ldap_base = ou=people,dc=example,dc=com
%s
userdb ldap {
  filter = (&(objectClass=posixAccount)(mail=%%{user}))
  fields {
    home = %%{ldap:homeDirectory}
    uid = %%{ldap:uidNumber}
    gid = %%{ldap:gidNumber}
  }
}
`, s.URI, servicePW, passdb)
	return diff24{conf: conf,
		logins: [][2]string{{"alice@example.com", "alicepw"}, {"Bob@Example.com", "bobpw"}},
		users:  []string{"alice@example.com", "bob@example.com"}}
}
