package sql

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/testenv"
)

// BenchmarkLookupPass measures password_query lookups against a real
// mariadbd over TCP, from parallel goroutines (GOMAXPROCS × -cpu, as
// RunParallel does), with Dovecot's default pool of 5 connections and a
// larger one. It reports lookups/s.
//
//	go test -run '^$' -bench LookupPass ./backends/sql/
func BenchmarkLookupPass(b *testing.B) {
	m := startMariaDB(b, testenv.MariaDBOptions{})
	loadConformance(b, m)
	for _, pool := range []int{5, 16} {
		b.Run(fmt.Sprintf("pool=%d", pool), func(b *testing.B) {
			d, _ := openDB(b, confFor(tcpConnect(m), fmt.Sprintf("pool_size = %d", pool)))
			ctx := context.Background()
			// Warm the pool and the prepared statement.
			if ans, err := d.LookupPass(ctx, conformance.Request("alice@example.com")); err != nil || ans.Outcome != backends.Found {
				b.Fatalf("found=%v err=%v", ans.Outcome, err)
			}
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					u := conformance.Users[i%len(conformance.Users)]
					i++
					if ans, err := d.LookupPass(ctx, conformance.Request(u.Name)); err != nil || ans.Outcome != backends.Found {
						b.Errorf("%s: found=%v err=%v", u.Name, ans.Outcome, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
		})
	}
}

// BenchmarkLookupPassSQLite is BenchmarkLookupPass on a SQLite file of
// 10,000 users.
//
//	go test -run '^$' -bench LookupPassSQLite ./backends/sql/
func BenchmarkLookupPassSQLite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "users.db")
	var sql strings.Builder
	sql.WriteString("BEGIN;\nCREATE TABLE users (username TEXT PRIMARY KEY, password TEXT, uid INTEGER, gid INTEGER, home TEXT);\n")
	for i := range 10000 {
		fmt.Fprintf(&sql, "INSERT INTO users VALUES ('user%05d@example.com', '{PLAIN}pw%05d', %d, %d, '/home/u%d');\n", i, i, i, i, i)
	}
	writeSQLite(b, path, sql.String()+"COMMIT;\n")
	d, _ := openDB(b, sqliteConf(path, "password_query = SELECT username AS user, password FROM users WHERE username = '%u'"))
	ctx := context.Background()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			name := fmt.Sprintf("user%05d@example.com", i%10000)
			i++
			if ans, err := d.LookupPass(ctx, conformance.Request(name)); err != nil || ans.Outcome != backends.Found {
				b.Errorf("%s: found=%v err=%v", name, ans.Outcome, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// BenchmarkLookupPassPgSQL is BenchmarkLookupPass against a private
// PostgreSQL cluster over its unix socket, with Dovecot's default pool.
//
//	go test -run '^$' -bench LookupPassPgSQL ./backends/sql/
func BenchmarkLookupPassPgSQL(b *testing.B) {
	p := testenv.StartPostgres(b, testenv.PostgresOptions{})
	loadConformancePg(b, p)
	d, _ := openDB(b, pgConf(pgSocket(p)))
	ctx := context.Background()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u := conformance.Users[i%len(conformance.Users)]
			i++
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second) // requests have deadlines
			ans, err := d.LookupPass(rctx, conformance.Request(u.Name))
			cancel()
			if err != nil || ans.Outcome != backends.Found {
				b.Errorf("%s: found=%v err=%v", u.Name, ans.Outcome, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}
