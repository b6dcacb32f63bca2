package cache

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// The sizes are a 10M cache (Dovecot's typical auth_cache_size, 8 shards)
// holding 10,000 users, the hot set of a mid-sized mail host.
const benchUsers = 10_000

func benchCache(b *testing.B, fp bool) (*Cache, []string) {
	c := New(Options{MaxBytes: 10 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: fp})
	keys := make([]string, benchUsers)
	for i := range keys {
		k, e := passdbEntry(i)
		keys[i] = k
		c.Store(k, e)
	}
	if st := c.Stats(); st.Entries != benchUsers {
		b.Fatalf("only %d entries fit", st.Entries)
	}
	return c, keys
}

func BenchmarkLookupHit(b *testing.B) {
	c, keys := benchCache(b, false)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, fresh, _ := c.Lookup(keys[i%benchUsers]); !fresh {
				b.Fatal("miss")
			}
			i += 7
		}
	})
}

func BenchmarkLookupHitSerial(b *testing.B) {
	c, keys := benchCache(b, false)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.Lookup(keys[i%benchUsers])
		i += 7
	}
}

func BenchmarkLookupMiss(b *testing.B) {
	c, _ := benchCache(b, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Lookup("P1\tnobody@example.com")
		}
	})
}

// BenchmarkStore stores new keys: each Store allocates its entry and,
// once the 10M budget is full, evicts.
func BenchmarkStore(b *testing.B) {
	c := New(Options{MaxBytes: 10 << 20, TTL: time.Hour})
	entries := make([]Entry, benchUsers)
	keys := make([]string, benchUsers*10)
	for i := range keys {
		keys[i] = fmt.Sprintf("P1\tuser%07d@example.com", i)
	}
	for i := range entries {
		_, entries[i] = passdbEntry(i)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			c.Store(keys[i%len(keys)], entries[i%benchUsers])
		}
	})
}

// BenchmarkStoreSame stores the answer already cached (several callers
// storing one coalesced answer, or a refresh after expiry): no allocation.
func BenchmarkStoreSame(b *testing.B) {
	c, keys := benchCache(b, false)
	entries := make([]Entry, benchUsers)
	for i := range entries {
		_, entries[i] = passdbEntry(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Store(keys[i%benchUsers], entries[i%benchUsers])
			i += 7
		}
	})
}

// BenchmarkCachedAuth is the fast path of a repeat login: Lookup, then
// PasswordMatches instead of the scheme.
func BenchmarkCachedAuth(b *testing.B) {
	c, keys := benchCache(b, true)
	pw := []byte("correct horse battery staple")
	for _, k := range keys {
		e, _, _ := c.Lookup(k)
		c.rememberPassword(k, e, pw)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			k := keys[i%benchUsers]
			e, _, _ := c.Lookup(k)
			if !c.passwordMatches(k, e, pw) {
				b.Fatal("no match")
			}
			c.markResult(k, e, true)
			i += 7
		}
	})
}

func BenchmarkRememberPassword(b *testing.B) {
	c, keys := benchCache(b, true)
	pw := []byte("correct horse battery staple")
	e, _, _ := c.Lookup(keys[0])
	b.ReportAllocs()
	for b.Loop() {
		c.rememberPassword(keys[0], e, pw)
	}
}

// BenchmarkDo is the miss path's overhead around a backend call that
// answers at once.
func BenchmarkDo(b *testing.B) {
	c, keys := benchCache(b, false)
	_, e := passdbEntry(1)
	fn := func(context.Context) (Entry, error) { return e, nil }
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			c.Do(ctx, keys[i%benchUsers], time.Second, fn)
			i += 7
		}
	})
}

// BenchmarkFlushUser is CACHE-FLUSH of one user in a cache of 100,000
// entries: the whole-cache scan of Dovecot's per-user rule.
func BenchmarkFlushUser(b *testing.B) {
	c := New(Options{MaxBytes: 100 << 20, TTL: time.Hour})
	for i := range 100_000 {
		k, e := passdbEntry(i)
		c.Store(k, e)
	}
	users := []string{"nobody@example.com"}
	b.ReportAllocs()
	for b.Loop() {
		c.Flush(users)
	}
}
