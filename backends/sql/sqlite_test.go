package sql

import (
	stdsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
)

// writeSQLite creates a database file at path with the statements in sql
// (through modernc's driver, read-write).
func writeSQLite(t testing.TB, path, sql string) {
	t.Helper()
	db, err := stdsql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range strings.Split(sql, ";\n") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

// conformanceSQL is the conformance table for SQLite and PostgreSQL
// (standard string literals).
func conformanceSQL() string {
	var b strings.Builder
	b.WriteString("CREATE TABLE cusers (username TEXT PRIMARY KEY, password TEXT, uid INTEGER, gid INTEGER, home TEXT, userdb_mail TEXT);\n")
	for _, u := range conformance.Users {
		mail := "NULL"
		if v, ok := u.Extra["userdb_mail"]; ok {
			mail = pgString(v)
		}
		fmt.Fprintf(&b, "INSERT INTO cusers VALUES (%s, %s, %s, %s, %s, %s);\n",
			pgString(u.Name), pgString(u.Password), u.UID, u.GID, pgString(u.Home), mail)
	}
	return b.String()
}

func sqliteConf(path string, lines ...string) string { return confForDriver("sqlite", path, lines...) }

// TestSQLite: the conformance suite, injection, fields and values on a
// database file, which authd opens read-only.
func TestSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.db")
	writeSQLite(t, path, conformanceSQL())
	d, _ := openDB(t, sqliteConf(path))
	t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, d) })
	t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, d) })
	t.Run("iterator", func(t *testing.T) { conformance.RunIterator(t, d) })

	t.Run("injection", func(t *testing.T) {
		for _, name := range injections {
			if pe, err := d.LookupPass(ctxT(t), conformance.Request(name)); pe.Outcome != backends.Unknown || err != nil {
				t.Errorf("%q: passdb found=%v err=%v, want not found", name, pe.Outcome, err)
			}
		}
	})
	t.Run("read-only", func(t *testing.T) {
		// A query that writes fails: authd never changes the file.
		w, _ := openDB(t, sqliteConf(path, "password_query = UPDATE cusers SET password = '{PLAIN}pwned' WHERE username = '%u' RETURNING password"))
		if ans, err := w.LookupPass(ctxT(t), conformance.Request("alice@example.com")); err == nil {
			t.Errorf("write through authd: found=%v", ans.Outcome)
		}
		conformance.RunPassdb(t, d)
	})
	t.Run("values", func(t *testing.T) {
		vpath := filepath.Join(t.TempDir(), "values.db")
		writeSQLite(t, vpath, `CREATE TABLE v (id TEXT, i INTEGER, r REAL, t TEXT, b BLOB, e TEXT, n NUMERIC, dt DATETIME, d DATE);
INSERT INTO v VALUES ('1', -42, 1e21, 'text', X'41FF', '', 1.5, '2020-01-02 03:04:05', '2020-01-02');
INSERT INTO v VALUES ('2', 9223372036854775807, 0.1, 'x', X'', NULL, 7, '2020-01-02 03:04:05.250', '2020-01-02 10:00:00')`)
		dv, _ := openDB(t, sqliteConf(vpath, "user_query = SELECT i, r, t, b, e, n, dt, d, dt || '' AS dt_text FROM v WHERE id = '%u'"))
		for id, want := range map[string]string{
			"1": "i=-42 r=1.0e+21 t=text b=A\xff e n=1.5 dt=2020-01-02 03:04:05 d=2020-01-02 dt_text=2020-01-02 03:04:05",
			"2": "i=9223372036854775807 r=0.1 t=x b n=7 dt=2020-01-02 03:04:05.25 d=2020-01-02 10:00:00 dt_text=2020-01-02 03:04:05.250",
		} {
			fs, err := dv.LookupUser(ctxT(t), conformance.Request(id))
			if err != nil || fs.Fields.String() != want {
				t.Errorf("row %s: %v %q\n want %q", id, err, fs.Fields.String(), want)
			}
		}
	})
}

// TestSQLiteMissingFile: a database file that is missing (or not a
// database) makes every lookup an error, never "unknown user", and authd
// does not create it; once it is there, lookups work.
func TestSQLiteMissingFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "users.db")
	d, lg := openDB(t, sqliteConf(path))
	expect := func(what string) {
		t.Helper()
		if ans, err := d.LookupPass(ctxT(t), conformance.Request("alice@example.com")); err == nil {
			t.Errorf("%s: found=%v, want an error", what, ans.Outcome)
		}
		if ans, err := d.LookupUser(ctxT(t), conformance.Request("nosuch@example.com")); err == nil {
			t.Errorf("%s: userdb found=%v, want an error", what, ans.Outcome)
		}
	}
	expect("missing")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("authd created the database file: %v", err)
	}
	if err := os.WriteFile(path, []byte("this is not a database, but long enough to have a header of one hundred bytes, which sqlite reads"), 0o600); err != nil {
		t.Fatal(err)
	}
	expect("not a database")
	os.Remove(path)
	writeSQLite(t, path, conformanceSQL())
	// Connections look at the path once a second: the new file is in use
	// within about that.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ans, err := d.LookupPass(ctxT(t), conformance.Request("alice@example.com"))
		if err == nil && ans.Outcome == backends.Found {
			break
		}
		if err == nil || time.Now().After(deadline) {
			t.Fatalf("after the file came back: found=%v err=%v", ans.Outcome, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conformance.RunPassdb(t, d)
	if !strings.Contains(lg.String(), "host is down") || !strings.Contains(lg.String(), "host is back") {
		t.Errorf("the outage of the file was not logged:\n%s", lg)
	}
}
