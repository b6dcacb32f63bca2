package sql

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/vars"
)

// TestCompileQueryPgSQL: the PostgreSQL lexer. '…' has no backslash
// escapes, "…" is an identifier, E'…' reads backslashes, dollar quotes
// hold anything, comments nest, and placeholders are $n kept apart from
// identifier characters.
func TestCompileQueryPgSQL(t *testing.T) {
	vc := &vars.Context{User: `o'brien\x"y@example.com`, Service: "imap"}
	for _, tc := range []struct {
		src, sql string
		args     []string
		static   bool
	}{
		{src: "SELECT username AS user, password FROM users WHERE username = '%u';", static: true,
			sql: "SELECT username AS user, password FROM users WHERE username = $1", args: []string{`o'brien\x"y@example.com`}},
		{src: DefaultPasswordQuery, static: true,
			sql: "SELECT username, domain, password FROM users WHERE username = $1 AND domain = $2", args: []string{`o'brien\x"y`, "example.com"}},
		// A backslash is an ordinary character: 'a\' is a whole literal.
		{src: `SELECT 'a\' AS x, '%n\' AS y, 'it''s %s' AS z`, static: true,
			sql: `SELECT 'a\' AS x, $1 AS y, $2 AS z`, args: []string{`o'brien\x"y\`, "it's imap"}},
		// "…" is an identifier: its value's double quotes are doubled.
		{src: `SELECT password FROM "users_%d" WHERE u = '%n'`,
			sql: `SELECT password FROM "users_example.com" WHERE u = $1`, args: []string{`o'brien\x"y`}},
		{src: `SELECT password AS "%n" FROM t`,
			sql: `SELECT password AS "o'brien\x""y" FROM t`, args: []string{}},
		// E'…' keeps the value in the text, quotes and backslashes doubled.
		{src: `SELECT 1 FROM t WHERE a = E'%u'`,
			sql: `SELECT 1 FROM t WHERE a = E'o''brien\\x"y@example.com'`, args: []string{}},
		{src: `SELECT 1 FROM t WHERE a = N'%u'`,
			sql: `SELECT 1 FROM t WHERE a = N'o''brien\x"y@example.com'`, args: []string{}},
		// Dollar quotes: the content as it is, a placeholder when it holds
		// a variable.
		{src: `SELECT $$it's$$ AS a, $q$%s'$q$ AS b FROM t`, static: true,
			sql: `SELECT $$it's$$ AS a, $1 AS b FROM t`, args: []string{`imap'`}},
		// Comments nest; -- needs no blank.
		{src: "SELECT /* a /* '%u' */ still */ 1 --'%u\nFROM t WHERE a = '%u'", static: true,
			sql: "SELECT   1  FROM t WHERE a = $1", args: []string{`o'brien\x"y@example.com`}},
		// $1 never glues to identifier characters.
		{src: "SELECT x FROM t WHERE a='%u'AND b=1", static: true,
			sql: "SELECT x FROM t WHERE a=$1 AND b=1", args: []string{`o'brien\x"y@example.com`}},
		// Outside quotes: Dovecot's PQescapeStringConn (standard strings).
		{src: "SELECT 1 FROM t WHERE a = %n",
			sql: `SELECT 1 FROM t WHERE a = o''brien\x"y`, args: []string{}},
		{src: "SELECT 1 FROM t WHERE a = '%u'::citext AND b = DATE '2020-01-01'", static: true,
			sql: "SELECT 1 FROM t WHERE a = $1::citext AND b = DATE '2020-01-01'", args: []string{`o'brien\x"y@example.com`}},
	} {
		checkExpand(t, dPgSQL, vc, tc.src, tc.sql, tc.args, tc.static)
	}
}

// TestCompileQuerySQLite: '…' with only ” as escape, "…", `…` and […]
// identifiers, ? placeholders.
func TestCompileQuerySQLite(t *testing.T) {
	vc := &vars.Context{User: "o'brien\\x\"y`@example.com", Service: "imap"}
	for _, tc := range []struct {
		src, sql string
		args     []string
		static   bool
	}{
		{src: "SELECT username AS user, password FROM users WHERE username = '%u'", static: true,
			sql: "SELECT username AS user, password FROM users WHERE username = ?", args: []string{"o'brien\\x\"y`@example.com"}},
		{src: `SELECT 'a\' AS x, '%s\' AS y FROM [my table] # not a comment`, static: true,
			sql: `SELECT 'a\' AS x, ? AS y FROM [my table] # not a comment`, args: []string{`imap\`}},
		{src: "SELECT password FROM `u_%d` WHERE \"n\" = '%n' -- '%u\n",
			sql: "SELECT password FROM `u_example.com` WHERE \"n\" = ?", args: []string{"o'brien\\x\"y`"}},
		{src: `SELECT password FROM "%n"`,
			sql: "SELECT password FROM \"o'brien\\x\"\"y`\"", args: []string{}},
		{src: `SELECT 1 FROM t WHERE b = X'%s'`, sql: `SELECT 1 FROM t WHERE b = X'imap'`, args: []string{}},
		{src: "SELECT 1 FROM t WHERE a = %u",
			sql: "SELECT 1 FROM t WHERE a = o''brien\\x\"y`@example.com", args: []string{}},
	} {
		checkExpand(t, dSQLite, vc, tc.src, tc.sql, tc.args, tc.static)
	}
}

func checkExpand(t *testing.T, dl dialect, vc *vars.Context, src, want string, wantArgs []string, static bool) {
	t.Helper()
	q, err := compileQueryFor(dl, "q", src)
	if err != nil {
		t.Errorf("%s %q: %v", dl, src, err)
		return
	}
	sql, args, err := q.expand(vc)
	if err != nil {
		t.Errorf("%s %q: expand: %v", dl, src, err)
		return
	}
	if sql != want || q.isStat != static {
		t.Errorf("%s %q:\n sql  %q (static %v)\n want %q (static %v)", dl, src, sql, q.isStat, want, static)
	}
	var got []string
	for _, a := range args {
		got = append(got, a.(string))
	}
	if strings.Join(got, "|") != strings.Join(wantArgs, "|") {
		t.Errorf("%s %q: args %q, want %q", dl, src, got, wantArgs)
	}
}

// TestPgCastParam: after the server could not type $2, it is sent as
// $2::text, in static and per-request queries alike.
func TestPgCastParam(t *testing.T) {
	q, err := compileQueryFor(dPgSQL, "q", "SELECT concat('%n', '@', '%d') AS user, password FROM t WHERE u = '%u'")
	if err != nil {
		t.Fatal(err)
	}
	vc := &vars.Context{User: "a@b"}
	if sql, _, _ := q.expand(vc); sql != "SELECT concat($1, '@', $2) AS user, password FROM t WHERE u = $3" {
		t.Fatalf("sql %q", sql)
	}
	if !q.castParam(2) || q.castParam(2) || q.castParam(9) {
		t.Errorf("castParam: a second cast or a bad index changed something")
	}
	if sql, _, _ := q.expand(vc); sql != "SELECT concat($1, '@', $2::text) AS user, password FROM t WHERE u = $3" {
		t.Errorf("after cast: %q", sql)
	}
}

// TestPgUnmatchable: values PostgreSQL cannot receive make the expansion
// fail with errUnmatchable (the lookup answers "not found"); other
// dialects send them.
func TestPgUnmatchable(t *testing.T) {
	for _, src := range []string{"SELECT 1 AS password FROM t WHERE a = '%u'", "SELECT 1 AS password FROM t WHERE a = E'%u'"} {
		for _, user := range []string{"a\x00b", "\xff\xfe"} {
			q, _ := compileQueryFor(dPgSQL, "q", src)
			if _, _, err := q.expand(&vars.Context{User: user}); err == nil || !strings.Contains(err.Error(), errUnmatchable.Error()) {
				t.Errorf("%q %q: %v", src, user, err)
			}
			q, _ = compileQueryFor(dSQLite, "q", src)
			if _, _, err := q.expand(&vars.Context{User: user}); err != nil {
				t.Errorf("sqlite %q %q: %v", src, user, err)
			}
		}
	}
}

// TestSQLiteFloat compares with what sqlite3 3.40 (Debian 12's library,
// which Dovecot uses) prints for CAST(x AS TEXT).
func TestSQLiteFloat(t *testing.T) {
	for f, want := range map[float64]string{
		1: "1.0", 0.1: "0.1", 1e21: "1.0e+21", 1e15: "1.0e+15", 123456789012345: "123456789012345.0",
		1e-5: "1.0e-05", 0.0001: "0.0001", -2.5e-10: "-2.5e-10", 3.141592653589793: "3.14159265358979",
		1.0 / 3: "0.333333333333333", 100: "100.0", 1e14: "100000000000000.0", 9.99e20: "9.99e+20",
		2.5e-300: "2.5e-300", 1e300: "1.0e+300", 0: "0.0",
	} {
		if got := sqliteFloat(f); got != want {
			t.Errorf("%v: %q, want %q", f, got, want)
		}
	}
}

func TestParsePgConnect(t *testing.T) {
	o, err := parsePgConnect(`host=/run/postgresql host=db2.example.com hostaddr=192.0.2.7 port=5433 dbname=mail user=dovecot password='a b\'c' sslmode=verify-full sslrootcert=/ca.pem maxconns=7 connect_timeout=3 keepalives=1 application_name=authd`)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.hosts, ",") != "/run/postgresql,db2.example.com,192.0.2.7" || o.maxConns != 7 || o.connectTimeout.Seconds() != 3 || len(o.ignored) != 1 {
		t.Errorf("parsed %+v", o)
	}
	want := `host=db2.example.com port=5433 dbname=mail user=dovecot password='a b\'c' sslmode=verify-full sslrootcert=/ca.pem application_name=authd connect_timeout=3`
	if got := o.connString("db2.example.com"); got != want {
		t.Errorf("conn string\n %s\nwant\n %s", got, want)
	}
	if o, err := parsePgConnect("dbname=x"); err != nil || len(o.hosts) != 0 || o.connString("") != "dbname=x connect_timeout=5" {
		t.Errorf("no host: %v %+v", err, o)
	}
	for in, msg := range map[string]string{
		"host=":                         "empty host",
		"host=a bogus=1":                "unknown or unsupported connect option: bogus",
		"host=a password=x y":           "word 3 has no '='",
		"host=a connect_timeout=-1":     "connect_timeout",
		"host=a sslmode=verify-ca":      "needs sslrootcert",
		"host=a password=secretvalue z": "word 3",
	} {
		_, err := parsePgConnect(in)
		if err == nil || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "secretvalue") {
			t.Errorf("%q: %v, want %q", in, err, msg)
		}
	}
}
