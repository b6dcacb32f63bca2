package redisstate_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/internal/redisstate"
	"github.com/authd-project/authd/internal/testenv"
)

// benchNode is newNode for a benchmark: the same wiring, stopped at the
// end.
func benchNode(b *testing.B, addr string) *node {
	c, err := redisstate.New(redisstate.Options{Addrs: []string{addr}, KeyPrefix: "bench:", CallTimeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	n := &node{c: c, lim: limiter.New(limiter.Config{}), ca: cache.New(cache.Options{MaxBytes: 64 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true})}
	n.lim.SetShared(c.Limiter(), c.PasswordKey())
	n.ca.SetShared(c.Cache(), cache.SharedOptions{})
	c.Attach(n.ca, n.lim)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	b.Cleanup(func() {
		cancel()
		<-done
		_ = c.Close()
	})
	return n
}

// commandStats prints Redis's own time per call of each command, so that
// a benchmark shows what each call costs the server.
func commandStats(b *testing.B, addr string) {
	out, err := realserver.RedisDo(context.Background(), addr, "", "INFO", "commandstats")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(strings.Join(out, ""), "\n") {
		if strings.HasPrefix(l, "cmdstat_") {
			b.Log(strings.TrimSpace(l))
		}
	}
}

// BenchmarkLimiterShared is one successful login's brute-force check with
// the shared store: a reserve, and a (batched) finish.
func BenchmarkLimiterShared(b *testing.B) {
	r := testenv.StartRedis(b, testenv.RedisOptions{})
	n := benchNode(b, r.Addr)
	ip := netip.MustParseAddr("192.0.2.1")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		a := n.lim.Begin(limiter.Request{Account: fmt.Sprintf("u%d", i%1000), IP: ip, Password: []byte("pw")})
		a.Done(limiter.Succeeded)
	}
	b.StopTimer()
	commandStats(b, r.Addr)
}

// BenchmarkCacheHit is a cache hit: in L1 (with the generation check),
// and in L2 (a process that has not seen the user), against none.
func BenchmarkCacheHit(b *testing.B) {
	r := testenv.StartRedis(b, testenv.RedisOptions{})
	fetch := func(context.Context) (cache.Entry, error) {
		return cache.Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: "$6$salt$hash"}, nil
	}
	b.Run("l1-alone", func(b *testing.B) {
		c := cache.New(cache.Options{MaxBytes: 64 << 20, TTL: time.Hour})
		_, _ = c.Get(b.Context(), "P1\tu", false, time.Second, fetch)
		for b.Loop() {
			_, _ = c.Get(b.Context(), "P1\tu", false, time.Second, fetch)
		}
	})
	b.Run("l1-shared", func(b *testing.B) {
		n := benchNode(b, r.Addr)
		_, _ = n.ca.Get(b.Context(), "P1\tu", false, time.Second, fetch)
		for b.Loop() {
			_, _ = n.ca.Get(b.Context(), "P1\tu", false, time.Second, fetch)
		}
	})
	b.Run("l2", func(b *testing.B) {
		w, rd := benchNode(b, r.Addr), benchNode(b, r.Addr)
		for i := range 10000 {
			_, _ = w.ca.Get(b.Context(), fmt.Sprintf("P1\tu%d", i), false, time.Second, fetch)
		}
		i := 0
		for b.Loop() {
			ans, _ := rd.ca.Get(b.Context(), fmt.Sprintf("P1\tu%d", i%10000), false, time.Second, fetch)
			_ = ans
			rd.ca.Flush(nil) // the next one misses L1 again
			i++
		}
		if rd.ca.SharedStats().Hits == 0 {
			b.Fatal("no L2 hits")
		}
	})
	commandStats(b, r.Addr)
}

// BenchmarkLimiterSharedParallel is BenchmarkLimiterShared from 64
// goroutines at once, as a busy host's logins: the reservations and
// finishes go to Redis in batches.
func BenchmarkLimiterSharedParallel(b *testing.B) {
	r := testenv.StartRedis(b, testenv.RedisOptions{})
	n := benchNode(b, r.Addr)
	ip := netip.MustParseAddr("192.0.2.1")
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a := n.lim.Begin(limiter.Request{Account: fmt.Sprintf("u%d", i%1000), Password: []byte("pw")})
			a.Done(limiter.Succeeded)
			i++
		}
	})
	b.StopTimer()
	_ = ip
	st := n.c.Stats()
	b.Logf("N %d: reserve calls %d, finish calls %d", b.N, st.Calls[0], st.Calls[1])
	commandStats(b, r.Addr)
}
