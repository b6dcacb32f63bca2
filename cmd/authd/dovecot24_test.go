package main

import (
	"bytes"
	stdsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/authd-project/authd/internal/testenv"
	_ "modernc.org/sqlite"
)

// A Dovecot 2.4 configuration (docs/operations.md §2.1) end to end: it
// loads, checks (drivers built), prints in 2.4 syntax, and answers logins.

const conf24 = `dovecot_config_version = 2.4.1
dovecot_storage_version = 2.4.1
base_dir = $DIR/run
auth_mechanisms = plain login
auth_failure_delay = 0
passdb passwd-file {
  passwd_file_path = $DIR/users
  default_password_scheme = PLAIN
  fields {
    where = %{passwd_file:team | default('none')}-%{protocol}
  }
}
userdb passwd-file {
  passwd_file_path = $DIR/users
  fields {
    home = /var/vmail/%{user | domain}/%{user | username}
    quota_rule:default = *:storage=2G
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
}
`

var users24 = map[string]string{
	"users": "alice@example.com:secret:1000:1000::/home/alice::team=red userdb_quota_rule=*:storage=1G\n",
}

func TestDovecot24Login(t *testing.T) {
	p := startAuthd(t, conf24, "run/auth-client", users24)
	// 2.4's default auth_username_format lower-cases the name.
	out, code := authdTest(t, "-a", p.path("run/auth-client"), "Alice@Example.COM", "secret")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	mustContain(t, out, "auth succeeded")
	mustContain(t, out, "user=alice@example.com")
	mustContain(t, out, "where=red-") // fields { } read the file's own fields
	var o, e bytes.Buffer
	if code := run([]string{"user", "-a", p.path("run/auth-userdb"), "alice@example.com"}, nil, &o, &e); code != 0 {
		t.Fatalf("user: exit %d: %s%s", code, o.String(), e.String())
	}
	mustContain(t, o.String(), "/var/vmail/example.com/alice")
	mustContain(t, o.String(), "*:storage=1G") // :default keeps the file's value
}

// TestCheck24Examples: `authd check` builds every driver of the 2.4
// documentation examples and prints them in 2.4 syntax.
func TestCheck24Examples(t *testing.T) {
	files, _ := filepath.Glob("../../internal/config/testdata/dovecot24-examples/*.conf")
	if len(files) != 4 {
		t.Fatalf("found %d examples", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"check", "-c", f}, nil, &out, &errb); code != 0 {
				t.Fatalf("exit %d:\n%s", code, errb.String())
			}
			if !strings.HasPrefix(out.String(), "dovecot_config_version = 2.4.1\n") {
				t.Errorf("not printed in 2.4 syntax:\n%.300s", out.String())
			}
			if strings.Contains(out.String(), "secret") {
				t.Errorf("a password was printed:\n%s", out.String())
			}
		})
	}
}

// badConf24 and badBlocks24 hold the four mistakes of the issue's "Bad
// input": a 2.4 setting with a 2.3 value, an unknown filter, a block
// without a driver, and a %{ that does not close.
const badConf24 = `dovecot_config_version = 2.4.1
auth_username_format = %Lu
!include blocks.conf
`

const badBlocks24 = `passdb passwd-file {
  passwd_file_path = /etc/%{user | nosuchfilter}/users
}
passdb nodriver {
}
userdb static {
  fields {
    home = /home/%{user
  }
}
`

var badErrors24 = []string{
	"authd.conf:2: auth_username_format: %Lu is Dovecot 2.3's",
	`blocks.conf:2: passwd_file_path: template "/etc/%{user | nosuchfilter}/users": at offset 14: unknown filter "nosuchfilter"`,
	"blocks.conf:4: passdb nodriver has no driver",
	"blocks.conf:8: userdb_fields/home: template \"/home/%{user\": at offset 6: unterminated %{",
}

// TestCheck24BadInput: one `authd check` run reports every mistake of a
// 2.4 file, each with its file:line, and prints nothing else.
func TestCheck24BadInput(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "authd.conf"), []byte(badConf24), 0o644)
	os.WriteFile(filepath.Join(dir, "blocks.conf"), []byte(badBlocks24), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"check", "-c", filepath.Join(dir, "authd.conf")}, nil, &out, &errb); code == 0 {
		t.Fatalf("check passed a broken config:\n%s", out.String())
	}
	msg := errb.String()
	for _, want := range badErrors24 {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if n := strings.Count(strings.TrimSpace(msg), "\n") + 1; n != 4 {
		t.Errorf("want exactly 4 errors, got %d:\n%s", n, msg)
	}
	if out.Len() != 0 {
		t.Errorf("a broken configuration was printed:\n%s", out.String())
	}
}

// TestSQL24Drivers: a 2.4 configuration's sql_driver = pgsql (a `pgsql
// HOST { parameters { } }` section) and sql_driver = sqlite (sqlite_path)
// reach the PostgreSQL and SQLite drivers, and a login answers.
func TestSQL24Drivers(t *testing.T) {
	const table = "CREATE TABLE users (username TEXT PRIMARY KEY, password TEXT, home TEXT);\n" +
		"INSERT INTO users VALUES ('alice@example.com', '{PLAIN}alicepw', '/home/alice');\n"
	const blocks = `passdb sql {
  passdb_sql_query = SELECT username AS user, password FROM users WHERE username = '%{user}'
}
userdb sql {
  userdb_sql_query = SELECT home, 1000 AS uid, 1000 AS gid FROM users WHERE username = '%{user}'
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
`
	head := "dovecot_config_version = 2.4.1\nbase_dir = $DIR/run\nauth_failure_delay = 0\n"
	t.Run("pgsql", func(t *testing.T) {
		pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
		pg.Exec(t, table)
		// The host is the socket's directory, as libpq reads it; the
		// password holds a blank and a quote (quoted in the connect string).
		pg.Exec(t, `ALTER USER `+pg.User+` PASSWORD 'a b''c'`)
		conf := head + fmt.Sprintf("sql_driver = pgsql\npgsql %s {\n  parameters {\n    port = %d\n    dbname = %s\n    user = %s\n    password = \"a b'c\"\n  }\n}\n",
			pg.SocketDir, pg.Port, pg.Database, pg.User) + blocks
		checkSQL24Login(t, conf, nil)
	})
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		db, err := stdsql.Open("sqlite", filepath.Join(dir, "users.db"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(table); err != nil {
			t.Fatal(err)
		}
		db.Close()
		conf := head + "sql_driver = sqlite\nsqlite_path = " + filepath.Join(dir, "users.db") + "\n" + blocks
		checkSQL24Login(t, conf, nil)
	})
}

func checkSQL24Login(t *testing.T, conf string, files map[string]string) {
	t.Helper()
	p := startAuthd(t, conf, "run/auth-client", files)
	out, code := authdTest(t, "-a", p.path("run/auth-client"), "alice@example.com", "alicepw")
	if code != 0 || !strings.Contains(out, "auth succeeded") {
		t.Fatalf("login: exit %d: %s", code, out)
	}
	if out, code := authdTest(t, "-a", p.path("run/auth-client"), "alice@example.com", "wrong"); code == 0 {
		t.Errorf("wrong password accepted: %s", out)
	}
	var o, e bytes.Buffer
	if code := run([]string{"user", "-a", p.path("run/auth-userdb"), "alice@example.com"}, nil, &o, &e); code != 0 {
		t.Fatalf("user: exit %d: %s%s", code, o.String(), e.String())
	}
	mustContain(t, o.String(), "/home/alice")
}

// TestServe24BadInput: nothing of a broken 2.4 file is half-loaded: authd
// does not start on it (every error logged, no socket made), and a reload
// to it keeps the running configuration, which goes on answering.
func TestServe24BadInput(t *testing.T) {
	dir := testenv.Dir(t)
	os.WriteFile(filepath.Join(dir, "authd.conf"), []byte(strings.Replace(badConf24, "!include",
		"base_dir = "+dir+"/run\n!include", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "blocks.conf"), []byte(badBlocks24), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "-c", filepath.Join(dir, "authd.conf")}, nil, &out, &errb); code == 0 {
		t.Fatal("authd served a broken configuration")
	}
	for _, want := range badErrors24 {
		mustContain(t, errb.String(), want)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "auth-client")); err == nil {
		t.Error("a socket was made for a broken configuration")
	}

	p := startAuthd(t, conf24, "run/auth-client", users24)
	os.WriteFile(p.path("blocks.conf"), []byte(badBlocks24), 0o644)
	os.WriteFile(p.path("authd.conf"), []byte(strings.Replace(badConf24, "!include",
		"base_dir = "+p.dir+"/run\n!include", 1)), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "blocks.conf:8: userdb_fields/home") })
	mustContain(t, p.stderr.String(), "keeping the running configuration")
	// The log quotes the messages: their file:line and setting suffice.
	for _, want := range []string{"authd.conf:2: auth_username_format", "blocks.conf:2: passwd_file_path",
		"blocks.conf:4: passdb nodriver has no driver", "blocks.conf:8: userdb_fields/home"} {
		mustContain(t, p.stderr.String(), want)
	}
	if out, code := authdTest(t, "-a", p.path("run/auth-client"), "Alice@Example.COM", "secret"); code != 0 {
		t.Fatalf("after the bad reload: exit %d: %s", code, out)
	}
}
