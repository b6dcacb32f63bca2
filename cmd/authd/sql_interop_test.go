package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/schemes"
)

// The RHEL "Dovecot with MariaDB" setup of issue 5, verbatim but for the
// server's address and credentials.
const sqlConfExt = `driver = mysql
connect = %s dbname=authd user=authd password=authdpw%s
default_pass_scheme = SHA512-CRYPT
user_query = SELECT username FROM users WHERE username='%%u';
password_query = SELECT username AS user, password FROM users WHERE username='%%u';
iterate_query = SELECT username FROM users;
`

const sqlAuthdConf = `
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
auth_cache_size = 10M
auth_cache_ttl = 30 mins
auth_cache_negative_ttl = 30 mins
passdb {
  driver = sql
  args = $DIR/dovecot-sql.conf.ext
}
userdb {
  driver = sql
  args = $DIR/dovecot-sql.conf.ext
  # The issue's setting is uid=vmail gid=vmail; nobody/nogroup exist everywhere.
  override_fields = uid=nobody gid=nogroup home=/var/mail/%n/
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
  unix_listener auth-master {
    mode = 0600
  }
}
`

func sqlHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := schemes.Generate("SHA512-CRYPT", []byte(pw), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSQLThroughAuthd(t *testing.T) {
	testenv.Require(t, "doveadm")
	ca := testenv.NewCA(t)
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{TLS: ca})
	db.Exec(t, fmt.Sprintf(`CREATE TABLE authd.users (username VARCHAR(255) PRIMARY KEY, password VARCHAR(255));
INSERT INTO authd.users VALUES ('alice@example.com', '{SHA512-CRYPT}%s'), ('bob@example.com', '%s'), ('carol@example.com', '{PLAIN}carolpw');`,
		sqlHash(t, "alicepw"), sqlHash(t, "bobpw")))

	for _, tc := range []struct{ name, connect, extra string }{
		{"tcp", fmt.Sprintf("host=127.0.0.1 port=%d", db.Port), ""},
		{"socket", "host=" + db.Socket, ""},
		{"tls", fmt.Sprintf("host=127.0.0.1 port=%d", db.Port), " ssl_ca=" + ca.CertFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startAuthd(t, sqlAuthdConf, "run/auth-client", map[string]string{
				"dovecot-sql.conf.ext": fmt.Sprintf(sqlConfExt, tc.connect, tc.extra),
			})
			da := testenv.NewDoveadm(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			run := func(args ...string) (string, int) {
				t.Helper()
				out, code, err := da.Run(ctx, args...)
				if err != nil {
					t.Fatal(err)
				}
				return out, code
			}
			client, userdb := p.path("run/auth-client"), p.path("run/auth-userdb")
			for _, c := range []struct {
				user, pass string
				want       int
			}{
				{"alice@example.com", "alicepw", 0}, // {SHA512-CRYPT}
				{"bob@example.com", "bobpw", 0},     // no prefix: default_pass_scheme
				{"alice@example.com", "wrong", 77},
				{"nosuch@example.com", "x", 77},
				{"x' OR '1'='1", "x", 77}, // injection: unknown user
			} {
				if out, code := run("auth", "test", "-a", client, c.user, c.pass); code != c.want {
					t.Errorf("auth test %s: rc %d, want %d\n%s", c.user, code, c.want, out)
				}
			}
			out, code := run("user", "-a", userdb, "alice@example.com")
			if code != 0 {
				t.Fatalf("doveadm user: rc %d\n%s", code, out)
			}
			mustHaveFields(t, out, map[string]string{"uid": "65534", "gid": "65534", "home": "/var/mail/alice/"})
			out, code = run("user", "-a", userdb, "*")
			if code != 0 || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "carol@example.com") {
				t.Fatalf("doveadm user '*': rc %d\n%s", code, out)
			}
			if n := db.Exec(t, "SELECT COUNT(*) FROM authd.users"); strings.TrimSpace(n) != "3" {
				t.Fatalf("table changed: %q rows", n)
			}
			if tc.name != "tcp" {
				return
			}
			// Postfix on the same authd.
			pf := testenv.StartPostfix(t, client)
			for _, c := range []struct {
				mech, user, pass string
				want             int
			}{
				{"PLAIN", "alice@example.com", "alicepw", 235},
				{"LOGIN", "bob@example.com", "bobpw", 235},
				{"PLAIN", "alice@example.com", "wrong", 535},
			} {
				code, msg, err := testenv.SMTPAuth(ctx, pf.Addr, c.mech, c.user, c.pass)
				if err != nil || code != c.want {
					t.Errorf("SMTP AUTH %s %s: %d %s %v, want %d", c.mech, c.user, code, msg, err, c.want)
				}
			}
		})
	}
}

// TestSQLOutageAndCache: with the cache warm, a SIGKILLed MariaDB still
// lets cached users in and answers everyone else with a temporary failure,
// never a wrong password; after the restart logins work again within 2 s;
// a password changed in the table takes effect at the next login; doveadm
// auth cache flush empties one user's entries.
func TestSQLOutageAndCache(t *testing.T) {
	testenv.Require(t, "doveadm")
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	db.Exec(t, fmt.Sprintf(`CREATE TABLE authd.users (username VARCHAR(255) PRIMARY KEY, password VARCHAR(255));
INSERT INTO authd.users VALUES ('alice@example.com', '{SHA512-CRYPT}%s'), ('carol@example.com', '{PLAIN}carolpw');`, sqlHash(t, "alicepw")))
	// Users nobody has logged in as yet: each is asked of the database.
	var fresh strings.Builder
	fresh.WriteString("INSERT INTO authd.users VALUES ")
	for i := 0; i < 20000; i++ {
		if i > 0 {
			fresh.WriteString(",")
		}
		fmt.Fprintf(&fresh, "('u%05d@example.com','{PLAIN}pw%05d')", i, i)
	}
	db.Exec(t, fresh.String())
	p := startAuthd(t, sqlAuthdConf, "run/auth-client", map[string]string{
		"dovecot-sql.conf.ext": fmt.Sprintf(sqlConfExt, fmt.Sprintf("host=127.0.0.1 port=%d", db.Port), ""),
	})
	client := p.path("run/auth-client")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	auth := func(c *dovecot.AuthClient, user, pass string) string {
		r, err := c.Plain(ctx, []string{"service=imap"}, "", user, pass)
		if err != nil {
			return "error: " + err.Error()
		}
		if r.Cmd == "OK" {
			return "OK"
		}
		if code, _ := r.Get("code"); code == "temp_fail" {
			return "TEMPFAIL"
		}
		return "FAIL"
	}
	c, err := dovecot.DialAuth(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := auth(c, "alice@example.com", "alicepw"); got != "OK" {
		t.Fatalf("warm-up: %s", got)
	}

	// Concurrent logins while the server dies: alice is cached, the u*
	// users are not.
	var next atomic.Int64
	var stop atomic.Bool
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cc, err := dovecot.DialAuth(ctx, client)
			if err != nil {
				t.Error(err)
				return
			}
			defer cc.Close()
			for !stop.Load() {
				user, pass, kind := "alice@example.com", "alicepw", "cached"
				if i%2 == 1 {
					n := next.Add(1) % 20000
					user, pass, kind = fmt.Sprintf("u%05d@example.com", n), fmt.Sprintf("pw%05d", n), "uncached"
				}
				got := auth(cc, user, pass)
				mu.Lock()
				counts[kind+" "+got]++
				mu.Unlock()
				if got == "FAIL" || strings.HasPrefix(got, "error") {
					t.Errorf("%s during the outage: %s (must be OK or a temporary failure)", user, got)
					return
				}
			}
		}(i)
	}
	time.Sleep(200 * time.Millisecond)
	db.Kill()
	time.Sleep(700 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	t.Logf("answers around the outage: %v", counts)
	if counts["cached OK"] == 0 || counts["uncached TEMPFAIL"] == 0 || counts["cached TEMPFAIL"] != 0 {
		t.Fatalf("expected only OKs for the cached user and temporary failures for the others: %v", counts)
	}

	db.Restart(t)
	restarted := time.Now()
	for {
		if got := auth(c, "carol@example.com", "carolpw"); got == "OK" {
			break
		}
		if time.Since(restarted) > 2*time.Second {
			t.Fatalf("logins still failing 2 s after the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("logins work again %v after the restart", time.Since(restarted).Round(time.Millisecond))

	// A password changed in the table takes effect at the next login.
	db.Exec(t, "UPDATE authd.users SET password='{PLAIN}newpw' WHERE username='alice@example.com'")
	if got := auth(c, "alice@example.com", "newpw"); got != "OK" {
		t.Fatalf("login with the changed password: %s", got)
	}
	// doveadm auth cache flush alice: alice's entries go, carol's stay.
	da := testenv.NewDoveadm(t)
	out, code, err := da.Run(ctx, "auth", "cache", "flush", "-a", p.path("run/auth-master"), "alice@example.com")
	if err != nil || code != 0 {
		t.Fatalf("cache flush: rc %d %v\n%s", code, err, out)
	}
	if !strings.Contains(out, "1 cache entries flushed") {
		t.Fatalf("cache flush of alice: %s", out)
	}
	out, _, _ = da.Run(ctx, "auth", "cache", "flush", "-a", p.path("run/auth-master"))
	if strings.Contains(out, " 0 cache entries flushed") || !strings.Contains(out, "cache entries flushed") {
		t.Fatalf("flush of everything (carol's and the u* entries left): %s", out)
	}
}

// TestSQLInlineSettings: the dovecot-sql.conf.ext settings written inline
// in the passdb/userdb blocks.
func TestSQLInlineSettings(t *testing.T) {
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	db.Exec(t, `CREATE TABLE authd.users (username VARCHAR(255) PRIMARY KEY, password VARCHAR(255), home VARCHAR(255));
INSERT INTO authd.users VALUES ('alice@example.com', '{PLAIN}alicepw', '/home/alice');`)
	conf := fmt.Sprintf(`
base_dir = $DIR/run
auth_failure_delay = 0
passdb {
  driver = sql
  sql_driver = mysql
  connect = host=127.0.0.1 port=%d dbname=authd user=authd password=authdpw
  password_query = SELECT password FROM users WHERE username = '%%u'
}
userdb {
  driver = sql
  connect = host=127.0.0.1 port=%d dbname=authd user=authd password=authdpw
  user_query = SELECT home, 1000 AS uid, 1000 AS gid FROM users WHERE username = '%%u'
}
`, db.Port, db.Port)
	p := startAuthd(t, conf, "run/auth-client", nil)
	if out, code := authdTest(t, "-a", p.path("run/auth-client"), "alice@example.com", "alicepw"); code != 0 {
		t.Fatalf("inline sql passdb: exit %d %s", code, out)
	}
	var out, errb strings.Builder
	if code := run([]string{"user", "-a", p.path("run/auth-userdb"), "alice@example.com"}, nil, &out, &errb); code != 0 {
		t.Fatalf("inline sql userdb: exit %d %s", code, errb.String())
	}
	mustContain(t, out.String(), "home\t/home/alice")
	// authd check hides the DB password of an inline connect.
	var cout, cerr strings.Builder
	if code := run([]string{"check", "-c", p.path("authd.conf")}, nil, &cout, &cerr); code != 0 {
		t.Fatalf("check: %s", cerr.String())
	}
	if strings.Contains(cout.String(), "authdpw") {
		t.Fatalf("check printed the DB password:\n%s", cout.String())
	}
}
