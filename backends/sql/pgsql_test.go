package sql

// Tests against real PostgreSQL clusters started by internal/testenv
// (initdb in a private directory, free port, private socket directory).
// They skip without Debian's postgresql package and fail instead when
// AUTHD_REQUIRE_INTEGRATION=1.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/testenv"
)

// pgString quotes s as a PostgreSQL literal (standard_conforming_strings).
func pgString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// loadConformancePg creates cusers holding conformance.Users.
func loadConformancePg(t testing.TB, p *testenv.Postgres) {
	t.Helper()
	var b strings.Builder
	b.WriteString("CREATE TABLE cusers (username text PRIMARY KEY, password text, uid int, gid int, home text, userdb_mail text);\n")
	for _, u := range conformance.Users {
		mail := "NULL"
		if v, ok := u.Extra["userdb_mail"]; ok {
			mail = pgString(v)
		}
		fmt.Fprintf(&b, "INSERT INTO cusers VALUES (%s, %s, %s, %s, %s, %s);\n",
			pgString(u.Name), pgString(u.Password), u.UID, u.GID, pgString(u.Home), mail)
	}
	p.Exec(t, b.String())
}

func pgTCP(p *testenv.Postgres) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s sslmode=disable", p.Port, p.Database, p.User, p.Password)
}

func pgSocket(p *testenv.Postgres) string {
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s", p.SocketDir, p.Port, p.Database, p.User)
}

func pgConf(connect string, lines ...string) string { return confForDriver("pgsql", connect, lines...) }

// TestPostgres runs everything that can share one cluster: TLS on TCP,
// and a user (tlsonly) that pg_hba.conf refuses without TLS.
func TestPostgres(t *testing.T) {
	t.Parallel()
	ca := testenv.NewCA(t)
	p := testenv.StartPostgres(t, testenv.PostgresOptions{User: "dovecot", Password: "dovecotPW", TLS: ca,
		HBA: []string{"hostnossl all tlsonly 127.0.0.1/32 reject"}})
	loadConformancePg(t, p)
	p.Exec(t, "CREATE ROLE tlsonly LOGIN PASSWORD 'tlspw';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO tlsonly;\n")
	tls := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=tlsonly password=tlspw sslrootcert=%s", p.Port, p.Database, ca.CertFile)

	t.Run("conformance", func(t *testing.T) {
		for name, connect := range map[string]string{
			"tcp":         pgTCP(p),
			"socket":      pgSocket(p),
			"tls":         tls + " sslmode=verify-full",
			"tls-require": tls + " sslmode=require",
			// Nothing listens on 127.0.0.2: the second host serves.
			"first-host-dead": fmt.Sprintf("host=127.0.0.2 host=127.0.0.1 port=%d dbname=%s user=dovecot password=dovecotPW maxconns=3", p.Port, p.Database),
		} {
			t.Run(name, func(t *testing.T) {
				d, _ := openDB(t, pgConf(connect))
				t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, d) })
				t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, d) })
				t.Run("iterator", func(t *testing.T) { conformance.RunIterator(t, d) })
			})
		}
	})
	t.Run("errors", func(t *testing.T) {
		other := testenv.NewCA(t)
		for name, connect := range map[string]string{
			"wrong-ca":     fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=tlsonly password=tlspw sslmode=verify-full sslrootcert=%s", p.Port, p.Database, other.CertFile),
			"no-tls":       tls + " sslmode=disable",
			"bad-password": fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=dovecot password=wrong sslmode=disable", p.Port, p.Database),
			"no-database":  fmt.Sprintf("host=127.0.0.1 port=%d dbname=nosuchdb user=dovecot password=dovecotPW", p.Port),
		} {
			t.Run(name, func(t *testing.T) { expectLookupErrors(t, pgConf(connect), "dovecotPW", "tlspw") })
		}
	})
	t.Run("injection", func(t *testing.T) { testInjectionPg(t, p) })
	t.Run("fields", func(t *testing.T) { testFieldsPg(t, p) })
	t.Run("values", func(t *testing.T) { testValuesPg(t, p) })
	t.Run("untyped-param", func(t *testing.T) {
		// concat() cannot type $1; authd retries with $1::text.
		d, lg := openDB(t, pgConf(pgTCP(p), "password_query = SELECT concat(split_part('%u', '@', 1), '@', '%d') AS user, password FROM cusers WHERE username = '%u'"))
		for range 2 {
			pe, err := d.LookupPass(ctxT(t), conformance.Request("alice@example.com"))
			if u, _ := pe.Fields.Get("user"); err != nil || pe.Outcome != backends.Found || u != "alice@example.com" {
				t.Fatalf("found=%v err=%v user=%q", pe.Outcome, err, u)
			}
		}
		if strings.Count(lg.String(), "cannot infer the type") != 1 {
			t.Errorf("want one warning about the cast:\n%s", lg)
		}
	})
	t.Run("pipeline-errors", func(t *testing.T) { testPipelineErrors(t, p) })
	t.Run("timeout", func(t *testing.T) {
		d, _ := openDB(t, pgConf(pgTCP(p),
			"password_query = SELECT username AS user, password, pg_sleep(CASE WHEN username = 'bob@example.com' THEN 5 ELSE 0 END) AS slept FROM cusers WHERE username = '%u'"))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if ans, err := d.LookupPass(ctx, conformance.Request("bob@example.com")); err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("found=%v err=%v, want a deadline error", ans.Outcome, err)
		}
		if ans, err := d.LookupPass(ctxT(t), conformance.Request("alice@example.com")); err != nil || ans.Outcome != backends.Found {
			t.Errorf("after a timeout: found=%v err=%v", ans.Outcome, err)
		}
	})
}

// expectLookupErrors: with conf every lookup is an error, never "unknown
// user", and no error shows a password.
func expectLookupErrors(t *testing.T, conf string, secrets ...string) {
	d, _ := openDB(t, conf)
	ans, err := d.LookupPass(ctxT(t), conformance.Request("alice@example.com"))
	if err == nil {
		t.Fatalf("found=%v err=%v, want an error", ans.Outcome, err)
	}
	if ans, err := d.LookupUser(ctxT(t), conformance.Request("nosuch@example.com")); err == nil {
		t.Errorf("userdb: found=%v err=%v, want an error", ans.Outcome, err)
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks a password: %v", err)
		}
	}
	t.Logf("error (as expected): %v", err)
}

// testInjectionPg: placeholders, and values kept in the text (E'…' with
// backslashes active, N'…', a quoted identifier), never change the query
// or the table.
func testInjectionPg(t *testing.T, p *testenv.Postgres) {
	count := func() string {
		return strings.TrimSpace(p.Exec(t, "SELECT COUNT(*), COUNT(*) FILTER (WHERE password LIKE '%pwned%') FROM cusers"))
	}
	before := count()
	for name, conf := range map[string]string{
		"placeholders": pgConf(pgTCP(p)),
		"in-text": pgConf(pgTCP(p),
			`password_query = SELECT username AS user, password FROM cusers WHERE username = E'%u' AND home <> N'%u' AND "username" IS NOT NULL`,
			`user_query = SELECT uid, gid, home FROM cusers AS "%n" WHERE username = E'%u'`),
	} {
		t.Run(name, func(t *testing.T) {
			d, _ := openDB(t, conf)
			ctx := ctxT(t)
			for _, name := range injections {
				if pe, err := d.LookupPass(ctx, conformance.Request(name)); pe.Outcome != backends.Unknown || err != nil {
					t.Errorf("%q: passdb found=%v err=%v, want not found", name, pe.Outcome, err)
				}
				if ans, err := d.LookupUser(ctx, conformance.Request(name)); ans.Outcome != backends.Unknown || err != nil {
					t.Errorf("%q: userdb found=%v err=%v", name, ans.Outcome, err)
				}
			}
			for _, u := range conformance.Users {
				if ans, err := d.LookupPass(ctx, conformance.Request(u.Name)); ans.Outcome != backends.Found || err != nil {
					t.Errorf("%s: found=%v err=%v", u.Name, ans.Outcome, err)
				}
			}
		})
	}
	if after := count(); after != before {
		t.Errorf("table changed: %q -> %q", before, after)
	}
}

// testFieldsPg: NULL unset, empty string set, several rows, no password
// column, a broken query an error.
func testFieldsPg(t *testing.T, p *testenv.Postgres) {
	p.Exec(t, `CREATE TABLE ftest (username text, password text, nologin text, reason text, uid int, home text);
INSERT INTO ftest VALUES ('flags', '{PLAIN}x', '', NULL, 1000, '/home/flags'),
 ('dup', '{PLAIN}a', NULL, NULL, 1, '/home/dup1'), ('dup', '{PLAIN}b', NULL, NULL, 2, '/home/dup2'),
 ('nullpw', NULL, NULL, NULL, NULL, NULL);`)
	d, _ := openDB(t, pgConf(pgTCP(p), "default_pass_scheme = SHA512-CRYPT",
		"password_query = SELECT username AS user, password, nologin, reason FROM ftest WHERE username = '%u'",
		"user_query = SELECT uid, home, nologin FROM ftest WHERE username = '%u' ORDER BY uid"))
	ctx := ctxT(t)
	pe, err := d.LookupPass(ctx, conformance.Request("flags"))
	if err != nil || pe.Outcome != backends.Found || pe.Scheme != "PLAIN" || pe.Data != "x" || pe.Fields.String() != "user=flags nologin" {
		t.Errorf("flags: %v %v %+v (fields %s)", pe.Outcome, err, pe.PassEntry, pe.Fields)
	}
	if pe, err := d.LookupPass(ctx, conformance.Request("nullpw")); err != nil || pe.Outcome != backends.Found || pe.HasPassword {
		t.Errorf("nullpw: %v %v %+v", pe.Outcome, err, pe.PassEntry)
	}
	if ans, err := d.LookupPass(ctx, conformance.Request("dup")); err == nil || !strings.Contains(err.Error(), "multiple") {
		t.Errorf("dup passdb: found=%v err=%v", ans.Outcome, err)
	}
	if fs, err := d.LookupUser(ctx, conformance.Request("dup")); err != nil || fs.Fields.String() != "uid=1 home=/home/dup1" {
		t.Errorf("dup userdb: %v %v %s", fs.Outcome, err, fs.Fields)
	}
	d2, _ := openDB(t, pgConf(pgTCP(p), "password_query = SELECT password FROM nosuchtable WHERE username = '%u'"))
	if ans, err := d2.LookupPass(ctx, conformance.Request("flags")); err == nil {
		t.Errorf("missing table: found=%v err=%v", ans.Outcome, err)
	}
}

// testValuesPg: every value is the server's own text, as psql (and
// libpq, and so Dovecot) shows it.
func testValuesPg(t *testing.T, p *testenv.Postgres) {
	cols := "d, r, n, b, ts, tstz, dt, iv, ba, arr, js, u, i8"
	p.Exec(t, `CREATE TABLE vtest (id text PRIMARY KEY, d double precision, r real, n numeric(12,4), b boolean,
  ts timestamp(3), tstz timestamptz, dt date, iv interval, ba bytea, arr int[], js jsonb, u uuid, i8 bigint);
INSERT INTO vtest VALUES ('1', 1e21, 0.1, 1.5, true, '2020-01-02 03:04:05.123', '2020-01-02 03:04:05+02', '2020-01-02',
  '1 day 02:03:04', '\x00ff', '{1,2,3}', '{"a": [1, "x"]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', -9223372036854775808),
 ('2', 0.30000000000000004, 3.4e38, -0.0001, false, '1999-12-31 23:59:59', '1999-12-31 23:59:59.5Z', '1999-12-31',
  '-1 mons', '', '{}', 'null', '00000000-0000-0000-0000-000000000000', 0);`)
	d, _ := openDB(t, pgConf(pgTCP(p), "user_query = SELECT "+cols+" FROM vtest WHERE id = '%u'"))
	names := strings.Split(cols, ", ")
	for _, id := range []string{"1", "2"} {
		want := strings.Split(strings.TrimRight(p.Exec(t, "SELECT "+cols+" FROM vtest WHERE id = '"+id+"'"), "\n"), "\t")
		fs, err := d.LookupUser(ctxT(t), conformance.Request(id))
		if err != nil || fs.Outcome != backends.Found || len(want) != len(names) {
			t.Fatalf("%s: found=%v err=%v (psql %q)", id, fs.Outcome, err, want)
		}
		for j, name := range names {
			if got, _ := fs.Fields.Get(name); got != want[j] {
				t.Errorf("row %s: column %s = %q, the server's text is %q", id, name, got, want[j])
			}
		}
	}
}

// TestPgOutage: kill the cluster under load; lookups fail (never "not
// found"), and the same DB recovers once it is back.
func TestPgOutage(t *testing.T) {
	t.Parallel()
	p := testenv.StartPostgres(t, testenv.PostgresOptions{})
	loadConformancePg(t, p)
	d, lg := openDB(t, pgConf(pgSocket(p)))
	checkOutage(t, d, lg, p.Kill, func() { p.Restart(t) })
}

// TestPgFailover: two clusters behind two host= (socket directories, one
// port number); the first is killed under load and the second answers
// every lookup; once the first is back, lookups return to it.
func TestPgFailover(t *testing.T) {
	t.Parallel()
	a := testenv.StartPostgres(t, testenv.PostgresOptions{})
	loadConformancePg(t, a)
	b := testenv.StartPostgres(t, testenv.PostgresOptions{Port: a.Port, SocketOnly: true})
	loadConformancePg(t, b)
	for _, c := range []*testenv.Postgres{a, b} {
		c.Exec(t, fmt.Sprintf("CREATE TABLE server_name (name text);\nINSERT INTO server_name VALUES (%s);\n", pgString(c.SocketDir)))
	}
	d, lg := openDB(t, pgConf(fmt.Sprintf("host=%s host=%s port=%d dbname=authd user=authd", a.SocketDir, b.SocketDir, a.Port),
		"password_query = SELECT username AS user, password, (SELECT name FROM server_name) AS served_by FROM cusers WHERE username = '%u'"))
	servedBy := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		pe, err := d.LookupPass(ctx, conformance.Request("alice@example.com"))
		if err != nil || pe.Outcome != backends.Found {
			return "", fmt.Errorf("found=%v err=%v", pe.Outcome, err)
		}
		v, _ := pe.Fields.Get("served_by")
		return v, nil
	}
	if s, err := servedBy(); err != nil || s != a.SocketDir {
		t.Fatalf("served by %q (%v), want the first host", s, err)
	}
	var stop atomic.Bool
	var fromB atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				s, err := servedBy()
				if err != nil {
					t.Errorf("lookup during failover: %v", err)
				} else if s == b.SocketDir {
					fromB.Add(1)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	a.Kill()
	time.Sleep(400 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if fromB.Load() == 0 {
		t.Errorf("the second host served nothing")
	}
	a.Restart(t)
	restarted := time.Now()
	for {
		s, err := servedBy()
		if err == nil && s == a.SocketDir {
			break
		}
		if time.Since(restarted) > 3*probeInterval+2*time.Second {
			t.Fatalf("still served by %q (%v) %v after the first host came back", s, err, time.Since(restarted))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(lg.String(), "host is back") {
		t.Errorf("failback not logged")
	}
}

// testPipelineErrors: lookups share a connection's pipeline; one that
// fails in the server (division by zero for uid 1003) fails alone, and the
// others sent with it are answered, for prepared (static) and per-request
// query texts.
func testPipelineErrors(t *testing.T, p *testenv.Postgres) {
	for name, q := range map[string]string{
		"prepared": "password_query = SELECT username AS user, password, 1/(uid-1003) AS x FROM cusers WHERE username = '%u'",
		"in-text":  "password_query = SELECT username AS user, password FROM cusers WHERE username = E'%u' AND 1/(uid-1003) IS NOT NULL",
	} {
		t.Run(name, func(t *testing.T) {
			d, _ := openDB(t, pgConf(pgTCP(p), q, "pool_size = 2"))
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						for _, u := range conformance.Users {
							pe, err := d.LookupPass(ctxT(t), conformance.Request(u.Name))
							if u.UID == "1003" {
								if err == nil || !strings.Contains(err.Error(), "division by zero") {
									t.Errorf("%s: found=%v err=%v, want division by zero", u.Name, pe.Outcome, err)
								}
							} else if err != nil || pe.Outcome != backends.Found {
								t.Errorf("%s: found=%v err=%v", u.Name, pe.Outcome, err)
							}
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
