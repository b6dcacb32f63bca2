package sql

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/testenv"
)

// TestDovecotOracle runs the same dovecot-sql.conf.ext in the real Dovecot
// 2.3 (dovecot-mysql) and in authd, on the same database, and compares
// Dovecot's answers on its auth-userdb socket (PASS, USER, LIST) with what
// the driver returns: passdb extra fields, userdb fields (NULL unset,
// empty string set, value formatting, several rows: an error for the
// passdb, the first row for the userdb), and LIST (the "user" column only
// when it comes first, else username@domain).
func TestDovecotOracle(t *testing.T) {
	t.Parallel()
	requireDovecotDriver(t, "mysql")
	m := startMariaDB(t, testenv.MariaDBOptions{})
	m.Exec(t, `CREATE TABLE authd.ftest (username VARCHAR(64), password VARCHAR(255), nologin VARCHAR(8), reason VARCHAR(64),
  userdb_quota_rule VARCHAR(64), uid INT, home VARCHAR(64), ratio DOUBLE, created DATETIME(3), price DECIMAL(6,2));
INSERT INTO authd.ftest VALUES
 ('flags', '{PLAIN}x', '', NULL, '*:storage=1G', 1000, '/home/flags', 1e21, '2020-01-02 03:04:05.123', 1.5),
 ('plain', '{PLAIN}y', NULL, 'Moved', NULL, 1001, '/home/plain', 0.25, NULL, NULL),
 ('dup', '{PLAIN}a', NULL, NULL, NULL, 1, '/home/dup1', NULL, NULL, NULL),
 ('dup', '{PLAIN}b', NULL, NULL, NULL, 2, '/home/dup2', NULL, NULL, NULL);
CREATE TABLE authd.ud (id INT PRIMARY KEY, username VARCHAR(64), domain VARCHAR(64));
INSERT INTO authd.ud VALUES (1, 'a', 'x.org'), (2, 'b', NULL), (4, 'c', 'z.org');`)
	compareWithDovecot(t, testenv.Dir(t), fmt.Sprintf(`driver = mysql
connect = host=%s dbname=authd user=authd password=authdpw
password_query = SELECT username AS user, password, nologin, reason, userdb_quota_rule, ratio FROM ftest WHERE username = '%%u'
user_query = SELECT uid, home, nologin, reason, ratio, created, price FROM ftest WHERE username = '%%u' ORDER BY uid
iterate_query = SELECT id, CONCAT(username, '!') AS user, username, domain FROM ud ORDER BY id
`, m.Socket), []string{"flags", "plain", "dup", "nosuch"})
}

// oracleTables is the data of the PostgreSQL and SQLite oracle tests, in
// SQL both read alike; types are the ones each turns into text its own
// way (floats, timestamps, numerics, booleans).
func oracleTables(float, timestamp, numeric, boolean string) string {
	return fmt.Sprintf(`CREATE TABLE ftest (username TEXT, password TEXT, nologin TEXT, reason TEXT,
  userdb_quota_rule TEXT, uid INTEGER, home TEXT, ratio %[1]s, created %[2]s, price %[3]s, active %[4]s);
INSERT INTO ftest VALUES ('flags', '{PLAIN}x', '', NULL, '*:storage=1G', 1000, '/home/flags', 1e21, '2020-01-02 03:04:05.123', 1.5, true);
INSERT INTO ftest VALUES ('plain', '{PLAIN}y', NULL, 'Moved', NULL, 1001, '/home/plain', 0.25, NULL, NULL, false);
INSERT INTO ftest VALUES ('dup', '{PLAIN}a', NULL, NULL, NULL, 1, '/home/dup1', 1e-5, NULL, NULL, NULL);
INSERT INTO ftest VALUES ('dup', '{PLAIN}b', NULL, NULL, NULL, 2, '/home/dup2', 3.141592653589793, NULL, NULL, NULL);
INSERT INTO ftest VALUES ('o''brien', '{PLAIN}q', NULL, NULL, NULL, 3, '/home/obrien', 100, NULL, 12, NULL);
CREATE TABLE ud (id INTEGER PRIMARY KEY, username TEXT, domain TEXT);
INSERT INTO ud VALUES (1, 'a', 'x.org');
INSERT INTO ud VALUES (2, 'b', NULL);
INSERT INTO ud VALUES (4, 'c', 'z.org');
`, float, timestamp, numeric, boolean)
}

// oracleQueries are the queries of the PostgreSQL and SQLite oracle tests.
const oracleQueries = `password_query = SELECT username AS user, password, nologin, reason, userdb_quota_rule, ratio, active FROM ftest WHERE username = '%u'
user_query = SELECT uid, home, nologin, reason, ratio, created, price, active FROM ftest WHERE username = '%u' ORDER BY uid
iterate_query = SELECT id, username || '!' AS user, username, domain FROM ud ORDER BY id
`

// oracleUsers are the names both servers are asked about.
var oracleUsers = []string{"flags", "plain", "dup", "nosuch", "o'brien", "o'brien' OR '1'='1", `o\'brien`, "\xff\xfe"}

// TestDovecotOraclePgSQL is TestDovecotOracle for driver = pgsql
// (dovecot-pgsql), on a private PostgreSQL cluster.
func TestDovecotOraclePgSQL(t *testing.T) {
	t.Parallel()
	requireDovecotDriver(t, "pgsql")
	p := testenv.StartPostgres(t, testenv.PostgresOptions{})
	p.Exec(t, oracleTables("double precision", "timestamp(3)", "numeric(6,2)", "boolean"))
	compareWithDovecot(t, testenv.Dir(t), fmt.Sprintf("driver = pgsql\nconnect = host=%s port=%d dbname=authd user=authd\n%s",
		p.SocketDir, p.Port, oracleQueries), oracleUsers)
}

// TestDovecotOracleSQLite is TestDovecotOracle for driver = sqlite
// (dovecot-sqlite), on a database file.
func TestDovecotOracleSQLite(t *testing.T) {
	t.Parallel()
	requireDovecotDriver(t, "sqlite")
	dir := testenv.Dir(t)
	db := filepath.Join(dir, "users.db")
	writeSQLite(t, db, oracleTables("REAL", "TEXT", "NUMERIC", "BOOLEAN"))
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	compareWithDovecot(t, dir, "driver = sqlite\nconnect = "+db+"\n"+oracleQueries, oracleUsers)
}

// requireDovecotDriver skips (fails under AUTHD_REQUIRE_INTEGRATION=1)
// without Dovecot and its SQL driver plugin (dovecot-mysql, -pgsql,
// -sqlite).
func requireDovecotDriver(t *testing.T, driver string) {
	testenv.Require(t, "dovecot")
	for _, dir := range []string{"/usr/lib/dovecot/modules/auth", "/usr/lib/dovecot/modules"} {
		if _, err := os.Stat(filepath.Join(dir, "libdriver_"+driver+".so")); err == nil {
			return
		}
	}
	if testenv.Integration() {
		t.Fatalf("dovecot-%s is not installed", driver)
	}
	t.Skipf("dovecot-%s is not installed", driver)
}

// compareWithDovecot writes the dovecot-sql.conf.ext body into dir (which
// Dovecot's auth process must be able to read: a testenv.Dir), starts
// Dovecot with it as passdb and userdb, opens the same file in authd, and
// compares PASS and USER for every user, then LIST.
func compareWithDovecot(t *testing.T, dir, body string, users []string) {
	conf := filepath.Join(dir, "dovecot-sql.conf.ext")
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(conf, 0o644)
	dv := testenv.StartDovecot(t, testenv.DovecotOptions{Dir: dir, Config: fmt.Sprintf(
		"auth_failure_delay = 0\nauth_debug = yes\nauth_username_chars =\npassdb {\n  driver = sql\n  args = %s\n}\nuserdb {\n  driver = sql\n  args = %s\n}\n", conf, conf)})
	d, err := New(conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	master := dialMaster(t, dv.Socket("auth-userdb"))

	for _, user := range users {
		comparePass(t, master, d, ctx, user)
		compareUser(t, master, d, ctx, user)
	}
	want := master.list("LIST\t3\tservice=test")
	var listed []string
	if err := d.IterateUsers(ctx, func(u string) bool { listed = append(listed, u); return true }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, want) {
		t.Errorf("LIST: authd %q, Dovecot %q", listed, want)
	}
}

// comparePass: "PASS id user=… fields", "NOTFOUND id" or "FAIL id".
func comparePass(t *testing.T, master *masterConn, d *DB, ctx context.Context, user string) {
	reply := master.cmd("PASS\t1\t" + user + "\tservice=test")
	pe, err := d.LookupPass(ctx, conformance.Request(user))
	found := pe.Outcome
	switch reply[0] {
	case "PASS":
		// userdb_* fields become userdb fields of the request and
		// the password is not sent: compare the rest.
		var extra fields.Fields
		for _, f := range pe.Fields {
			if !strings.HasPrefix(f.Key, "userdb_") {
				extra = append(extra, f)
			}
		}
		if err != nil || found != backends.Found || fieldsText(extra) != replyFields(reply[2:]) {
			t.Errorf("passdb %s: authd found=%v err=%v %s; Dovecot %q", user, found, err, fieldsText(extra), reply)
		}
	case "NOTFOUND":
		if err != nil || found != backends.Unknown {
			t.Errorf("passdb %s: Dovecot says unknown, authd found=%v err=%v", user, found, err)
		}
	default:
		if err == nil {
			t.Errorf("passdb %s: Dovecot %q, authd found=%v without error", user, reply, found)
		}
	}
}

// compareUser: "USER id user fields", "NOTFOUND id" or "FAIL id".
func compareUser(t *testing.T, master *masterConn, d *DB, ctx context.Context, user string) {
	reply := master.cmd("USER\t2\t" + user + "\tservice=test")
	fs, err := d.LookupUser(ctx, conformance.Request(user))
	found := fs.Outcome
	switch reply[0] {
	case "USER":
		if err != nil || found != backends.Found || fieldsText(fs.Fields) != replyFields(reply[3:]) {
			t.Errorf("userdb %s: authd found=%v err=%v %s; Dovecot %q", user, found, err, fieldsText(fs.Fields), reply)
		}
	case "NOTFOUND":
		if err != nil || found != backends.Unknown {
			t.Errorf("userdb %s: Dovecot says unknown, authd found=%v err=%v", user, found, err)
		}
	default:
		if err == nil {
			t.Errorf("userdb %s: Dovecot %q, authd found=%v without error", user, reply, found)
		}
	}
}

// masterConn is a minimal auth-master protocol client (docs/protocol.md §2).
type masterConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialMaster(t *testing.T, path string) *masterConn {
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	m := &masterConn{t: t, c: c, r: bufio.NewReader(c)}
	if _, err := fmt.Fprintf(c, "VERSION\t1\t0\n"); err != nil {
		t.Fatal(err)
	}
	for { // the server's VERSION and SPID
		line := m.line()
		if strings.HasPrefix(line, "SPID\t") {
			return m
		}
	}
}

func (m *masterConn) line() string {
	line, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatalf("auth-master: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

func (m *masterConn) cmd(line string) []string {
	if _, err := fmt.Fprintf(m.c, "%s\n", line); err != nil {
		m.t.Fatal(err)
	}
	return strings.Split(m.line(), "\t")
}

func (m *masterConn) list(line string) []string {
	if _, err := fmt.Fprintf(m.c, "%s\n", line); err != nil {
		m.t.Fatal(err)
	}
	var users []string
	for {
		f := strings.Split(m.line(), "\t")
		if f[0] != "LIST" {
			if f[0] != "DONE" {
				m.t.Errorf("LIST ended with %q", f)
			}
			return users
		}
		users = append(users, f[2])
	}
}

// replyFields renders reply fields like fieldsText ("key" is "key=").
func replyFields(fs []string) string {
	var kv []string
	for _, f := range fs {
		if !strings.Contains(f, "=") {
			f += "="
		}
		kv = append(kv, f)
	}
	slices.Sort(kv)
	return strings.Join(kv, " ")
}

// fieldsText renders fields sorted, "key=value", for comparison.
func fieldsText(fs fields.Fields) string {
	var kv []string
	for _, f := range fs {
		kv = append(kv, f.Key+"="+f.Value)
	}
	slices.Sort(kv)
	return strings.Join(kv, " ")
}
