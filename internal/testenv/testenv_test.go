package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
)

// Each server is started once, driven through a real round trip, and stopped;
// the three server tests run in parallel.

func TestHelpers(t *testing.T) {
	t.Setenv(EnvRequire, "1")
	if !Integration() {
		t.Error("Integration() = false with AUTHD_REQUIRE_INTEGRATION=1")
	}
	t.Setenv(EnvRequire, "0")
	if Integration() {
		t.Error("Integration() = true with AUTHD_REQUIRE_INTEGRATION=0")
	}

	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t)
		if p <= 0 || seen[p] {
			t.Fatalf("FreePort returned %d twice or invalid", p)
		}
		seen[p] = true
	}

	d := Dir(t)
	// Every directory up to / must be traversable by other users (dovecot,
	// postfix), and socket paths under it must fit in sun_path.
	for p := d; p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			t.Errorf("%s has mode %v; others cannot traverse it", p, fi.Mode().Perm())
		}
	}
	if len(d) > 60 {
		t.Errorf("Dir %q is too long for socket paths below it", d)
	}

	if _, err := lookBin("sh"); err != nil {
		t.Errorf("lookBin(sh): %v", err)
	}
	if _, err := lookBin("no-such-binary-authd"); err == nil {
		t.Error("lookBin found a binary that does not exist")
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func timed(t *testing.T, what string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	t.Logf("%s took %v", what, time.Since(start).Round(100*time.Microsecond))
}

// TestDovecotPostfix starts one Dovecot with a passwd-file and IMAP, POP3 and
// LMTP, and one Postfix whose smtpd authenticates against that Dovecot's
// auth-client socket: the whole chain authd will sit in.
func TestDovecotPostfix(t *testing.T) {
	t.Parallel()
	Require(t, "dovecot", "doveadm", "doveconf", postfixMaster)
	requireRoot(t, "Dovecot")

	dir := Dir(t)
	mkdirs(t, filepath.Join(dir, "mail"))
	for _, u := range []struct {
		name string
		id   int
	}{{"alice", 1001}, {"bob", 1002}} {
		home := filepath.Join(dir, "mail", u.name)
		mkdirOwned(t, home, u.id, u.id, 0o700)
	}
	writeFile(t, filepath.Join(dir, "users"), fmt.Sprintf(`alice@example.com:{PLAIN}alicepw:1001:1001::%[1]s/mail/alice::
bob@example.com:{PLAIN}bobpw:1002:1002::%[1]s/mail/bob::userdb_quota_rule=*:storage=1G
`, dir))

	var d *Dovecot
	timed(t, "StartDovecot", func() {
		d = StartDovecot(t, DovecotOptions{
			Dir:       dir,
			Protocols: []string{"imap", "pop3", "lmtp"},
			Config: fmt.Sprintf(`auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/users
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/users
}
`, dir),
		})
	})

	t.Run("doveadm", func(t *testing.T) {
		ctx := ctxT(t)
		out, code, err := d.Doveadm().Run(ctx, "auth", "test", "alice@example.com", "alicepw")
		if err != nil || code != 0 || !strings.Contains(out, "auth succeeded") {
			t.Errorf("instance doveadm auth test: code %d, err %v, out:\n%s", code, err, out)
		}
		out, code, err = d.Doveadm().Run(ctx, "user", "-a", d.Socket("auth-userdb"), "bob@example.com")
		if err != nil || code != 0 || !strings.Contains(out, "quota_rule") || !strings.Contains(out, "1002") {
			t.Errorf("doveadm user: code %d, err %v, out:\n%s", code, err, out)
		}
		out, code, err = d.Doveadm().Run(ctx, "user", "-a", d.Socket("auth-userdb"), "nobody@example.com")
		if err != nil || code != 67 {
			t.Errorf("doveadm user nobody: code %d (want 67), err %v, out:\n%s", code, err, out)
		}
		// A private doveadm, as tests will point it at authd's sockets.
		var da *Doveadm
		timed(t, "NewDoveadm", func() { da = NewDoveadm(t) })
		out, code, err = da.Run(ctx, "auth", "test", "-a", d.Socket("auth-client"), "-x", "service=imap", "alice@example.com", "alicepw")
		if err != nil || code != 0 {
			t.Errorf("private doveadm auth test: code %d, err %v, out:\n%s", code, err, out)
		}
	})

	t.Run("imap", func(t *testing.T) {
		login, sel, err := IMAPLogin(ctxT(t), d.IMAPAddr, "alice@example.com", "alicepw")
		if err != nil || !strings.HasPrefix(login, "a1 OK") || !strings.HasPrefix(sel, "a2 OK") {
			t.Errorf("IMAPLogin: %q, %q, %v", login, sel, err)
		}
	})

	t.Run("pop3", func(t *testing.T) {
		reply, err := POP3Login(ctxT(t), d.POP3Addr, "bob@example.com", "bobpw")
		if err != nil || !strings.HasPrefix(reply, "+OK") {
			t.Errorf("POP3Login: %q, %v", reply, err)
		}
	})

	t.Run("lmtp", func(t *testing.T) {
		rcpt, data, err := LMTPDeliver(ctxT(t), d.LMTPAddr, "sender@example.org",
			[]string{"alice@example.com", "nobody@example.com"},
			"Subject: testenv\n\n.leading dot\nbody\n")
		if err != nil || len(rcpt) != 2 || rcpt[0].Code != 250 || rcpt[1].Code != 550 ||
			len(data) != 1 || data[0].Code != 250 {
			t.Fatalf("LMTPDeliver: rcpt %v, data %v, err %v", rcpt, data, err)
		}
		// Same delivery over the unix socket.
		_, data, err = LMTPDeliver(ctxT(t), d.Socket("lmtp"), "sender@example.org", []string{"bob@example.com"}, "Subject: unix\n\nx\n")
		if err != nil || len(data) != 1 || data[0].Code != 250 {
			t.Errorf("LMTPDeliver over unix socket: data %v, err %v", data, err)
		}
		msgs, _ := filepath.Glob(filepath.Join(dir, "mail", "alice", "Maildir", "new", "*"))
		if len(msgs) != 1 {
			t.Fatalf("alice has %d new messages, want 1", len(msgs))
		}
		body, _ := os.ReadFile(msgs[0])
		if !strings.Contains(string(body), "\n.leading dot\n") {
			t.Errorf("dot-stuffing not undone by the server:\n%s", body)
		}
	})

	var pf *Postfix
	timed(t, "StartPostfix", func() { pf = StartPostfix(t, d.Socket("auth-client")) })

	t.Run("postfix", func(t *testing.T) {
		ctx := ctxT(t)
		mechs, err := SMTPMechanisms(ctx, pf.Addr)
		if err != nil || !slices.Contains(mechs, "PLAIN") || !slices.Contains(mechs, "LOGIN") {
			t.Errorf("SMTPMechanisms = %v, %v; want PLAIN and LOGIN", mechs, err)
		}
		for _, c := range []struct{ mech, user, pass string }{
			{"PLAIN", "alice@example.com", "alicepw"},
			{"LOGIN", "bob@example.com", "bobpw"},
		} {
			code, msg, err := SMTPAuth(ctx, pf.Addr, c.mech, c.user, c.pass)
			if err != nil || code != 235 {
				t.Errorf("SMTPAuth %s %s: %d %q %v, want 235", c.mech, c.user, code, msg, err)
			}
		}
	})

	// Failures last, each from its own client address: every failure adds to
	// Dovecot's per-IP penalty (docs/testing.md §4.3), which delays the next
	// request from that address by seconds. imap-login did not send
	// no-penalty despite login_trusted_networks, so WithSourceIP it is;
	// doveadm sends no rip= and has the empty-IP bucket to itself.
	t.Run("failures", func(t *testing.T) {
		// In parallel: Dovecot answers failures from a 500 ms timer even
		// with auth_failure_delay = 0.
		t.Run("imap", func(t *testing.T) {
			t.Parallel()
			login, _, err := IMAPLogin(WithSourceIP(ctxT(t), "127.0.0.2"), d.IMAPAddr, "alice@example.com", "wrong")
			if err != nil || !strings.Contains(login, "NO [AUTHENTICATIONFAILED]") {
				t.Errorf("IMAPLogin with a wrong password: %q, %v", login, err)
			}
			// auth_verbose logged the mismatch, with the client's IP, before
			// the reply.
			if log, _ := os.ReadFile(d.Log); !strings.Contains(string(log), "alice@example.com,127.0.0.2,") {
				t.Errorf("WithSourceIP: Dovecot did not see 127.0.0.2 (%s)", d.Log)
			}
		})
		t.Run("doveadm", func(t *testing.T) {
			t.Parallel()
			out, code, err := d.Doveadm().Run(ctxT(t), "auth", "test", "alice@example.com", "wrong")
			if err != nil || code != 77 || !strings.Contains(out, "auth failed") {
				t.Errorf("doveadm auth test wrong: code %d, err %v, out:\n%s", code, err, out)
			}
		})
		t.Run("smtp", func(t *testing.T) {
			t.Parallel()
			code, msg, err := SMTPAuth(ctxT(t), pf.Addr, "PLAIN", "alice@example.com", "wrong")
			if err != nil || code != 535 {
				t.Errorf("SMTPAuth wrong password: %d %q %v, want 535", code, msg, err)
			}
		})
	})

	timed(t, "Postfix.Stop", pf.Stop)
	timed(t, "Dovecot.Stop", d.Stop)
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	Require(t, "mariadbd", "mariadb")
	ca := NewCA(t)
	var m *MariaDB
	timed(t, "StartMariaDB (TLS, incl. install-db)", func() {
		m = StartMariaDB(t, MariaDBOptions{Database: "mail", TLS: ca})
	})
	m.Exec(t, `CREATE TABLE mail.users (username VARCHAR(255) PRIMARY KEY, password VARCHAR(255));
INSERT INTO mail.users VALUES ('alice@example.com', '{PLAIN}secret');`)

	// query runs the CLI as the unprivileged user: over TCP with a verified
	// TLS connection, or over the socket.
	query := func(ctx context.Context, overTCP bool, sql string) (string, error) {
		args := []string{"--no-defaults", "-u" + m.User, "-p" + m.Password, "--batch", "--skip-column-names"}
		if overTCP {
			args = append(args, "-h127.0.0.1", fmt.Sprintf("-P%d", m.Port),
				"--ssl", "--ssl-ca="+ca.CertFile, "--ssl-verify-server-cert")
		} else {
			args = append(args, "--socket="+m.Socket)
		}
		args = append(args, m.Database, "-e", sql)
		return runErr(ctx, cleanEnv(), "", append([]string{mustBin(t, "mariadb")}, args...)...)
	}
	ctx := ctxT(t)
	for _, tcp := range []bool{true, false} {
		out, err := query(ctx, tcp, "SELECT password FROM users WHERE username='alice@example.com'")
		if err != nil || strings.TrimSpace(out) != "{PLAIN}secret" {
			t.Errorf("query (tcp=%v): %q, %v", tcp, out, err)
		}
	}
	out, err := query(ctx, true, "SHOW SESSION STATUS LIKE 'Ssl_version'")
	if err != nil || !strings.Contains(out, "TLSv1.") {
		t.Errorf("TLS status: %q, %v", out, err)
	}

	timed(t, "MariaDB.Kill", m.Kill)
	if out, err := query(ctx, false, "SELECT 1"); err == nil {
		t.Errorf("query after Kill succeeded: %q", out)
	}
	timed(t, "MariaDB.Restart", func() { m.Restart(t) })
	out, err = query(ctx, true, "SELECT COUNT(*) FROM users")
	if err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("query after Restart: %q, %v", out, err)
	}
	timed(t, "MariaDB.Stop", m.Stop)
}

// statusSchema is the kind of tiny schema LDAP tests need: an attribute the
// standard schemas lack and an auxiliary class to carry it.
const statusSchema = `attributetype ( 1.3.6.1.4.1.99999.1.1 NAME 'status'
  DESC 'account status, for authd tests'
  EQUALITY caseIgnoreMatch
  SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{64}
  SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.99999.2.1 NAME 'authdStatus'
  DESC 'auxiliary class carrying status'
  SUP top AUXILIARY
  MAY status )
`

func TestSlapd(t *testing.T) {
	t.Parallel()
	Require(t, "slapd", "slapadd", "slappasswd", "ldapsearch", "ldapwhoami", "ldapadd")
	ca := NewCA(t)
	alice := Slappasswd(t, "-s", "alicepw")
	bob := Slappasswd(t, "-h", "{CRYPT}", "-c", "$6$rounds=1000$%.16s", "-s", "bobpw")
	svc := Slappasswd(t, "-s", "svcpw")
	ldif := realserver.ExampleLDIF(svc) + fmt.Sprintf(`dn: uid=alice,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: authdStatus
uid: alice
cn: Alice A
sn: A
mail: alice@example.com
uidNumber: 1001
gidNumber: 1001
homeDirectory: /home/alice
status: active
userPassword: %s

dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: posixAccount
uid: bob
cn: Bob B
sn: B
mail: bob@example.com
uidNumber: 1002
gidNumber: 1002
homeDirectory: /home/bob
userPassword: %s
`, alice, bob)

	var s *Slapd
	timed(t, "StartSlapd (TLS, incl. slapadd)", func() {
		s = StartSlapd(t, SlapdOptions{Schema: statusSchema, Config: "index status eq", LDIF: ldif, TLS: ca})
	})

	// ldap runs an ldap-utils command with only our CA configured.
	ldapConf := filepath.Join(Dir(t), "ldap.conf")
	writeFile(t, ldapConf, "TLS_CACERT "+ca.CertFile+"\nTLS_REQCERT demand\n")
	ldap := func(name string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.CommandContext(ctxT(t), mustBin(t, name), args...)
		cmd.Env = cleanEnv("LDAPCONF="+ldapConf, "LDAPRC=authd-no-such-ldaprc")
		out, err := cmd.CombinedOutput()
		code, err := exitCode(err)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(out), code
	}
	const aliceDN = "uid=alice,ou=people,dc=example,dc=com"

	out, code := ldap("ldapsearch", "-x", "-LLL", "-H", s.URI, "-D", "cn=authd,ou=services,"+s.BaseDN, "-w", "svcpw",
		"-b", s.BaseDN, "(&(uid=alice)(status=active))", "uidNumber", "userPassword")
	if code != 0 || !strings.Contains(out, "uidNumber: 1001") || !strings.Contains(out, "userPassword") {
		t.Errorf("service-account search: rc %d\n%s", code, out)
	}
	out, code = ldap("ldapsearch", "-x", "-LLL", "-H", s.URI, "-b", s.BaseDN, "(uid=alice)", "userPassword", "uid")
	if code != 0 || !strings.Contains(out, "uid: alice") || strings.Contains(out, "userPassword") {
		t.Errorf("anonymous search must see the entry without userPassword: rc %d\n%s", code, out)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-x", "-H", s.URI, "-D", aliceDN, "-w", "alicepw"}, 0, "dn:" + aliceDN},
		{[]string{"-x", "-H", s.URI, "-D", "uid=bob,ou=people," + s.BaseDN, "-w", "bobpw"}, 0, "dn:uid=bob"},
		{[]string{"-x", "-H", s.URI, "-D", "uid=bob,ou=people," + s.BaseDN, "-w", "wrong"}, 49, "Invalid credentials"},
		{[]string{"-x", "-H", s.LDAPIURI, "-D", s.RootDN, "-w", s.RootPW}, 0, "dn:" + s.RootDN},
		{[]string{"-Y", "EXTERNAL", "-H", s.LDAPIURI}, 0, "cn=peercred,cn=external,cn=auth"},
		{[]string{"-x", "-ZZ", "-H", s.URI, "-D", aliceDN, "-w", "alicepw"}, 0, "dn:" + aliceDN},
		{[]string{"-x", "-H", s.LDAPSURI, "-D", aliceDN, "-w", "alicepw"}, 0, "dn:" + aliceDN},
	} {
		out, code := ldap("ldapwhoami", c.args...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("ldapwhoami %q: rc %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}

	s.AddLDIF(t, `dn: uid=carol,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: carol
cn: Carol C
sn: C
userPassword: carolpw
`)
	timed(t, "Slapd.Kill", s.Kill)
	if out, code := ldap("ldapwhoami", "-x", "-H", s.URI); code == 0 {
		t.Errorf("ldapwhoami after Kill succeeded:\n%s", out)
	}
	timed(t, "Slapd.Restart", func() { s.Restart(t) })
	out, code = ldap("ldapwhoami", "-x", "-H", s.URI, "-D", "uid=carol,ou=people,"+s.BaseDN, "-w", "carolpw")
	if code != 0 {
		t.Errorf("carol (added live, before the Kill) cannot bind after Restart: rc %d\n%s", code, out)
	}
	timed(t, "Slapd.Stop", s.Stop)
}

// TestRedisServers starts each Redis topology and checks it answers as
// the launcher promises.
func TestRedisServers(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		r := StartRedis(t, RedisOptions{Password: "pw"})
		if out, err := realserver.RedisDo(t.Context(), r.Addr, "pw", "SET", "k", "v"); err != nil || out[0] != "OK" {
			t.Fatalf("SET: %q %v", out, err)
		}
		if _, err := realserver.RedisDo(t.Context(), r.Addr, "", "GET", "k"); err == nil {
			t.Fatal("GET without the password succeeded")
		}
		r.Restart(t)
		if out, err := realserver.RedisDo(t.Context(), r.Addr, "pw", "EXISTS", "k"); err != nil || out[0] != "0" {
			t.Fatalf("after a restart the key is still there (persistence on?): %q %v", out, err)
		}
	})
	t.Run("sentinel", func(t *testing.T) {
		s := StartRedisSentinel(t, RedisOptions{})
		addr, err := s.MasterAddr(t.Context())
		if err != nil || addr != s.Master.Addr {
			t.Fatalf("master by sentinel: %q %v, want %s", addr, err, s.Master.Addr)
		}
	})
	t.Run("cluster", func(t *testing.T) {
		c := StartRedisCluster(t, RedisOptions{})
		out, err := realserver.RedisDo(t.Context(), c.Addrs[0], "", "CLUSTER", "INFO")
		if err != nil || !strings.Contains(out[0], "cluster_known_nodes:3") || !strings.Contains(out[0], "cluster_slots_ok:16384") {
			t.Fatalf("CLUSTER INFO: %q %v", out, err)
		}
	})
}
