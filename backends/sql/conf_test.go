package sql

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/conffile"

	"github.com/authd-project/authd/backends"
)

func TestParseConfEveryKey(t *testing.T) {
	t.Setenv("AUTHD_TEST_CONNECT", "host=envhost")
	conf := `# dovecot-sql.conf.ext
driver = mysql
connect = host=db1.example.com host=/run/mysqld/mysqld.sock port=3307 dbname=mail \
  user=dovecot password="pa ss#word" ssl_ca=/etc/ca.pem ssl_ca_path=/etc/certs \
  ssl_cert=/c.pem ssl_key=/k.pem ssl_cipher=HIGH ssl_verify_server_cert=no \
  connect_timeout=7 read_timeout=8 write_timeout=9 option_file=/etc/my.cnf option_group=authd \
  maxconns=12 client_flags=0
default_pass_scheme = SHA512-CRYPT
password_query = \
  SELECT username AS user, password \
  # a comment line inside the continued value is skipped, as in Dovecot

  FROM users WHERE username = '%u' AND active = '#y'   # a trailing comment
user_query = "SELECT home, uid, gid FROM users WHERE username = \"%u\""
update_query = UPDATE users SET password = '%w'
iterate_query = 'SELECT username AS user FROM users'
userdb_warning_disable = YES
pool_size = 20
unused_section {
  key = value
  nested {
  }
}
`
	s, err := ParseConf("test.conf", []byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		Driver:               "mysql",
		Connect:              `host=db1.example.com host=/run/mysqld/mysqld.sock port=3307 dbname=mail user=dovecot password="pa ss#word" ssl_ca=/etc/ca.pem ssl_ca_path=/etc/certs ssl_cert=/c.pem ssl_key=/k.pem ssl_cipher=HIGH ssl_verify_server_cert=no connect_timeout=7 read_timeout=8 write_timeout=9 option_file=/etc/my.cnf option_group=authd maxconns=12 client_flags=0`,
		DefaultPassScheme:    "SHA512-CRYPT",
		PasswordQuery:        `SELECT username AS user, password FROM users WHERE username = '%u' AND active = '#y'`,
		UserQuery:            `SELECT home, uid, gid FROM users WHERE username = "%u"`,
		UpdateQuery:          `UPDATE users SET password = '%w'`,
		IterateQuery:         `SELECT username AS user FROM users`,
		UserdbWarningDisable: true,
		PoolSize:             20,
	}
	got := s
	got.Origin, got.warnings = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parsed:\n%+v\nwant:\n%+v", got, want)
	}
	if o := s.Origin["password_query"]; o != "test.conf:9" {
		t.Errorf("origin of password_query = %q, want test.conf:9 (the line with the key)", o)
	}
	if o := s.Origin["driver"]; o != "test.conf:2" {
		t.Errorf("origin of driver = %q", o)
	}

	o, err := parseConnect(s.Connect)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.hosts, ",") != "db1.example.com,/run/mysqld/mysqld.sock" || o.port != 3307 || o.dbname != "mail" ||
		o.user != "dovecot" || o.password != "pa ss#word" || o.sslCA != "/etc/ca.pem" || o.sslCAPath != "/etc/certs" ||
		o.sslCert != "/c.pem" || o.sslKey != "/k.pem" || o.sslVerify || o.connectTimeout != 7*time.Second ||
		o.readTimeout != 8*time.Second || o.writeTimeout != 9*time.Second || o.optionFile != "/etc/my.cnf" ||
		o.optionGroup != "authd" || o.maxConns != 12 {
		t.Errorf("connect parsed to %+v", o)
	}
	eps := o.endpoints()
	if len(eps) != 2 || eps[0] != (endpoint{"tcp", "db1.example.com:3307"}) || eps[1] != (endpoint{"unix", "/run/mysqld/mysqld.sock"}) {
		t.Errorf("endpoints %v", eps)
	}

	// $ENV: in an unquoted value, not in a quoted one.
	s, err = ParseConf("env.conf", []byte("connect = $ENV:AUTHD_TEST_CONNECT dbname=x\ndriver = '$ENV:AUTHD_TEST_CONNECT'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Connect != "host=envhost dbname=x" || s.Driver != "$ENV:AUTHD_TEST_CONNECT" {
		t.Errorf("env: connect=%q driver=%q", s.Connect, s.Driver)
	}
}

func TestParseConfDefaults(t *testing.T) {
	s, err := ParseConf("x", []byte("driver=mysql\nconnect=host=a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.PasswordQuery != DefaultPasswordQuery || s.UserQuery != DefaultUserQuery || s.IterateQuery != DefaultIterateQuery || s.DefaultPassScheme != "MD5" {
		t.Errorf("defaults: %+v", s)
	}
}

func TestParseConfErrors(t *testing.T) {
	conf := "driver = mysql\n" + // 1
		"bogus = 1\n" + // 2
		"connect host=a\n" + // 3
		"}\n" + // 4
		"userdb_warning_disable = maybe\n" + // 5
		"pool_size = 0\n" + // 6
		"password_query = x\x00y\n" + // 7
		"ok = \\\n" + // 8
		"  continued\n" // 9
	_, err := ParseConf("bad.conf", []byte(conf))
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, backends.ErrConfig) {
		t.Errorf("error does not wrap ErrConfig: %v", err)
	}
	for _, want := range []string{
		"bad.conf:2: unknown setting: bogus",
		"bad.conf:3: expecting '='",
		"bad.conf:4: unexpected '}'",
		"bad.conf:5: invalid boolean",
		"bad.conf:6: invalid pool_size",
		"bad.conf:7: line contains a NUL byte",
		"bad.conf:8: unknown setting: ok",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 7 {
		t.Errorf("%d errors reported, want 7 (all at once):\n%v", n, err)
	}

	// A value continued past the end of the file is dropped with a
	// warning, as Dovecot drops it.
	s, err := ParseConf("eof.conf", []byte("driver = mysql\niterate_query = SELECT x \\"))
	if err != nil {
		t.Fatal(err)
	}
	if s.IterateQuery != DefaultIterateQuery || len(s.warnings) != 1 {
		t.Errorf("iterate_query %q, warnings %q", s.IterateQuery, s.warnings)
	}
	// An ambiguous '#' warns.
	s, _ = ParseConf("hash.conf", []byte("driver = mysql#comment\n"))
	if s.Driver != "mysql" || len(s.warnings) != 1 {
		t.Errorf("driver %q, warnings %q", s.Driver, s.warnings)
	}
	// Long lines are refused.
	_, err = ParseConf("long.conf", []byte("driver = "+strings.Repeat("x", conffile.DefaultMaxLineLength)+"\n"))
	if err == nil || !strings.Contains(err.Error(), "long.conf:1: line is too long") {
		t.Errorf("long line: %v", err)
	}
}

func TestParseFileInclude(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("queries.inc", "password_query = SELECT 1 AS password\n!include main.conf\n")
	main := write("main.conf", "driver = mysql\n!include queries.inc\n!include_try missing-*.conf\n")
	s, err := ParseFile(main)
	if err == nil || !strings.Contains(err.Error(), "recursive include") {
		t.Errorf("recursive include: %v", err)
	}
	if s.PasswordQuery != "SELECT 1 AS password" {
		t.Errorf("included key not read: %q", s.PasswordQuery)
	}
	if _, err := ParseFile(filepath.Join(dir, "nope.conf")); err == nil || !errors.Is(err, backends.ErrConfig) {
		t.Errorf("missing file: %v", err)
	}
	_, err = ParseFile(write("inc2.conf", "!include nothing-here.conf\n"))
	if err == nil || !strings.Contains(err.Error(), "inc2.conf:1: !include") {
		t.Errorf("missing include: %v", err)
	}
}

func TestParseConnect(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"", "no hosts"},
		{"dbname=x", "no hosts"},
		{"host=a port=0", "invalid port"},
		{"host=a port=70000", "invalid port"},
		{"host=a nonsense", "word 2 has no '='"},
		{"host=a password=se cret", "word 3 has no '='"},
		{"host=a password=\"open", "unterminated quote"},
		{"host=a sslmode=require", "unknown connect string: sslmode"},
		{"host=a ssl_verify_server_cert=YES", "invalid boolean"},
		{"host=a connect_timeout=-1", "invalid connect_timeout"},
		{"host=a maxconns=x", "maxconns"},
		{"host= dbname=x", "empty host"},
	} {
		_, err := parseConnect(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		}
		// The password never appears in an error.
		if err != nil && strings.Contains(err.Error(), "cret") {
			t.Errorf("%q: error leaks the password: %v", tc.in, err)
		}
	}
	o, err := parseConnect(`host=a password='it\'s a "test"' user=u\x`)
	if err != nil {
		t.Fatal(err)
	}
	if o.password != `it's a "test"` || o.user != `u\x` {
		t.Errorf("password %q user %q", o.password, o.user)
	}
	// Defaults are Dovecot's.
	o, _ = parseConnect("host=a")
	if o.connectTimeout != 5*time.Second || o.readTimeout != 30*time.Second || !o.sslVerify || o.sslCipher != "HIGH" {
		t.Errorf("defaults %+v", o)
	}
	// localhost is the socket, as in libmysqlclient; IPv6 gets brackets.
	t.Setenv("MYSQL_UNIX_PORT", "")
	o, _ = parseConnect("host=localhost host=::1 host=[fe80::1] port=3308")
	eps := o.endpoints()
	if eps[0] != (endpoint{"unix", defaultSocket}) || eps[1].addr != "[::1]:3308" || eps[2].addr != "[fe80::1]:3308" {
		t.Errorf("endpoints %v", eps)
	}
}

func TestOptionFile(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "conf.d")
	if err := os.Mkdir(inc, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(inc, "50-client.cnf"), []byte("[client]\nport = 3310\n"), 0o600)
	cnf := filepath.Join(dir, "my.cnf")
	os.WriteFile(cnf, []byte(`# my.cnf
[mysqld]
user = mysql
[client]
user = fromfile
password = "p w\"d"
socket = /tmp/file.sock
!includedir `+inc+`
[authd]
host = dbhost ; not a comment in my.cnf values
ssl-ca = /etc/ca.pem
database = maildb
`), 0o600)
	o, err := parseConnect("option_file=" + cnf + " option_group=authd user=explicit")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.applyOptionFile(); err != nil {
		t.Fatal(err)
	}
	// The connect string's own user wins; the file fills the rest.
	if o.user != "explicit" || o.password != `p w"d` || o.port != 3310 || o.socket != "/tmp/file.sock" ||
		o.sslCA != "/etc/ca.pem" || o.dbname != "maildb" || len(o.hosts) != 1 || o.hosts[0] != "dbhost ; not a comment in my.cnf values" {
		t.Errorf("%+v", o)
	}
	// Without host, localhost means the option file's socket.
	o, _ = parseConnect("option_file=" + cnf)
	o.applyOptionFile()
	if eps := o.endpoints(); eps[0] != (endpoint{"unix", "/tmp/file.sock"}) {
		t.Errorf("endpoints %v", eps)
	}
}

func TestNewFromSettingsErrors(t *testing.T) {
	base := func() Settings {
		s := DefaultSettings()
		s.Driver = "mysql"
		s.Connect = "host=127.0.0.1 password=topsecret"
		return s
	}
	for _, tc := range []struct {
		mod  func(*Settings)
		want string
	}{
		{func(s *Settings) { s.Driver = "" }, "driver not set"},
		{func(s *Settings) { s.Driver = "cassandra" }, "driver cassandra is not supported"},
		{func(s *Settings) { s.Driver = "pgsql"; s.Connect += " ssl_ca=/x" }, "unsupported connect option: ssl_ca"},
		{func(s *Settings) { s.Driver = "pgsql"; s.Connect += " sslmode=verify-full" }, "needs sslrootcert"},
		{func(s *Settings) { s.Driver = "pgsql"; s.Connect += " sslmode=bogus" }, "invalid sslmode"},
		{func(s *Settings) { s.Driver = "pgsql"; s.Connect += " client_encoding=LATIN1" }, "client_encoding"},
		{func(s *Settings) { s.Driver = "pgsql"; s.Connect += " maxconns=x" }, "maxconns"},
		{func(s *Settings) { s.Driver = "pgsql"; s.Connect += " port=x" }, "host 127.0.0.1: invalid connect string"},
		{func(s *Settings) { s.Driver = "sqlite"; s.PasswordQuery = "SELECT [%u] FROM t" }, "[...] identifier"},
		{func(s *Settings) { s.Driver = "pgsql"; s.PasswordQuery = "SELECT U&'%u' AS password" }, "U&"},
		{func(s *Settings) { s.Driver = "pgsql"; s.PasswordQuery = "SELECT $x$%u AS password" }, "unterminated $x$"},
		{func(s *Settings) { s.Driver = "oracle" }, "unknown driver"},
		{func(s *Settings) { s.Connect = "" }, "connect string not set"},
		{func(s *Settings) { s.Connect += " nope=1" }, "unknown connect string: nope"},
		{func(s *Settings) { s.Connect += " ssl_ca=/nonexistent/ca.pem" }, "ssl_ca"},
		{func(s *Settings) { s.Connect += " ssl_cert=/x" }, "need ssl_ca"},
		{func(s *Settings) { s.DefaultPassScheme = "NOPE" }, "unknown default_pass_scheme"},
		{func(s *Settings) { s.PasswordQuery = "SELECT '%{nosuchvar}'" }, "unknown variable"},
		{func(s *Settings) { s.UserQuery = "SELECT '%u" }, "unterminated"},
		{func(s *Settings) { s.IterateQuery = "SELECT 1; DROP TABLE users" }, "several statements"},
		{func(s *Settings) { s.PasswordQuery = "SELECT x FROM t WHERE a = '%n' '@' '%d'" }, "adjacent"},
		{func(s *Settings) { s.Set("password_query", "SELECT '%", "file.conf:7") }, "file.conf:7: sql: password_query"},
	} {
		s := base()
		tc.mod(&s)
		_, err := NewFromSettings(s, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, backends.ErrConfig) {
			t.Errorf("error %v, want %q wrapping ErrConfig", err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if _, err := New("  ", nil); err == nil || !errors.Is(err, backends.ErrConfig) {
		t.Errorf("empty args: %v", err)
	}
	// Lower-case scheme names are fine (Dovecot matches them
	// case-insensitively).
	s := base()
	s.DefaultPassScheme = "sha512-crypt"
	d, err := NewFromSettings(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.DefaultScheme() != "SHA512-CRYPT" {
		t.Errorf("scheme %q", d.DefaultScheme())
	}
	// %n with %d collapses to %u (docs/protocol.md §5.9).
	if got := d.PassCacheKey().String(); got != "%u" {
		t.Errorf("pass cache key %q", got)
	}
}

func TestSettingsHidePassword(t *testing.T) {
	s := DefaultSettings()
	s.Driver = "mysql"
	for _, c := range []string{"host=a password=topsecret dbname=x", `host=a password="top secret"`, `host=a password="topsecret`} {
		s.Connect = c
		var buf strings.Builder
		slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "settings", s)
		for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%+v", s), buf.String()} {
			if strings.Contains(out, "topsecret") || strings.Contains(out, "top secret") || !strings.Contains(out, "password=<hidden>") {
				t.Errorf("%q printed as %s", c, out)
			}
		}
	}
}

// TestReaderDecisions pins what changed when this file's own reader was
// replaced by internal/conffile, which reads it as Dovecot's auth process
// does (lib-settings; see that package's decision table).
func TestReaderDecisions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// !include inside a section is followed (it used to be skipped); what
	// it sets belongs to the section, and its '}' closes the section.
	write("inner.inc", "driver = inside\n}\n")
	s, err := ParseFile(write("sect.conf", "unused {\n!include inner.inc\ndriver = mysql\n"))
	if err != nil || s.Driver != "mysql" {
		t.Errorf("include in a section: driver %q, %v", s.Driver, err)
	}
	if _, err := ParseFile(write("sect2.conf", "unused {\n!include nothere.inc\n}\n")); err == nil || !strings.Contains(err.Error(), "sect2.conf:2: !include") {
		t.Errorf("missing include in a section: %v", err)
	}
	// A value that is a lone quote is empty; \n in quotes is the letter n.
	s, err = ParseConf("q.conf", []byte("driver = \"\nconnect = \"host=a\\nb\"\n"))
	if err != nil || s.Driver != "" || s.Connect != "host=anb" {
		t.Errorf("driver %q connect %q, %v", s.Driver, s.Connect, err)
	}
	// An unclosed section is accepted, as Dovecot accepts it, with a
	// warning; everything after its header is inside it.
	s, err = ParseConf("open.conf", []byte("driver = mysql\nx {\ndriver = other\n"))
	if err != nil || s.Driver != "mysql" || len(s.warnings) != 1 {
		t.Errorf("unclosed section: driver %q warnings %q, %v", s.Driver, s.warnings, err)
	}
	// Booleans are yes/no only; pool_size is read like Dovecot's numbers.
	if _, err := ParseConf("b.conf", []byte("userdb_warning_disable = y\n")); err == nil {
		t.Error("userdb_warning_disable = y accepted")
	}
	if s, err := ParseConf("n.conf", []byte("pool_size = 0x10\n")); err != nil || s.PoolSize != 16 {
		t.Errorf("pool_size = 0x10: %d, %v", s.PoolSize, err)
	}
}
