package sql

import (
	"context"
	"fmt"
	"testing"

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
