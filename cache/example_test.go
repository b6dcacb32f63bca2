package cache_test

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/fields"
)

// Example shows how the engine uses the cache for a plaintext-password
// login against one passdb (docs/protocol.md §5.9): Get for the entry,
// CheckPassword for the password rules.
func Example() {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c := cache.New(cache.Options{
		MaxBytes: 10 << 20, TTL: time.Hour, NegativeTTL: time.Hour,
		Fingerprint: true, Now: func() time.Time { return now },
	})
	backend := map[string]string{"alice@example.com": "secret"}
	backendDown := false

	// The passdb lookup: found, not found, or "could not tell".
	lookup := func(user string) func(context.Context) (cache.Entry, error) {
		return func(context.Context) (cache.Entry, error) {
			if backendDown {
				return cache.Entry{}, errors.New("connection refused")
			}
			pw, ok := backend[user]
			if !ok {
				return cache.Entry{Negative: true}, nil
			}
			return cache.Entry{HasPassword: true, Scheme: "PLAIN", Data: pw,
				Fields: fields.Fields{{Key: "userdb_uid", Value: "5000"}}}, nil
		}
	}
	// Stands in for the scheme check (SHA512-CRYPT, bcrypt...).
	verify := func(e *cache.Entry, pw []byte) bool {
		return subtle.ConstantTimeCompare([]byte(e.Data), pw) == 1
	}

	sources := map[cache.Source]string{cache.FromBackend: "backend", cache.Fresh: "cache", cache.Stale: "stale"}
	auth := func(user, password string) string {
		pw := []byte(password)
		// The engine builds this with
		// p.cacheKey.ExpandCacheKey(r.vc, false).
		key := "P1\t" + user
		force := false
		for {
			a, err := c.Get(context.Background(), key, force, 5*time.Second, lookup(user))
			if err != nil {
				return "tempfail"
			}
			from := sources[a.Source]
			if a.Entry.Negative {
				return "unknown (" + from + ")" // the engine still runs its dummy verification
			}
			ran := false
			v, _ := c.CheckPassword(key, a.Entry, a.Source != cache.FromBackend, pw, func() (bool, error) {
				ran = true
				return verify(a.Entry, pw), nil
			})
			if !ran && a.Source == cache.Fresh {
				from = "fingerprint"
			}
			switch v {
			case cache.Right:
				return "ok (" + from + ")"
			case cache.Recheck:
				force = true // the password may have changed: ask the backend
				continue
			}
			return "fail (" + from + ")"
		}
	}

	fmt.Println(auth("alice@example.com", "secret"))
	fmt.Println(auth("alice@example.com", "secret"))
	fmt.Println(auth("alice@example.com", "wrong")) // last check succeeded: recheck
	fmt.Println(auth("alice@example.com", "wrong")) // now final from the cache
	fmt.Println(auth("bob@example.com", "x"))
	fmt.Println(auth("bob@example.com", "x"))

	backend["alice@example.com"] = "new secret" // password changed...
	c.Flush([]string{"alice@example.com"})      // ...and CACHE-FLUSH sent
	fmt.Println(auth("alice@example.com", "secret"))
	fmt.Println(auth("alice@example.com", "new secret"))

	now = now.Add(2 * time.Hour) // everything expires; then an outage
	backendDown = true
	fmt.Println(auth("alice@example.com", "new secret"))
	fmt.Println(auth("carol@example.com", "x"))
	st := c.Stats()
	fmt.Printf("hits=%d misses=%d negative_hits=%d stale=%d entries=%d\n",
		st.Hits, st.Misses, st.NegativeHits, st.StaleHits, st.Entries)
	// Output:
	// ok (backend)
	// ok (fingerprint)
	// fail (backend)
	// fail (cache)
	// unknown (backend)
	// unknown (cache)
	// fail (backend)
	// ok (cache)
	// ok (stale)
	// tempfail
	// hits=5 misses=5 negative_hits=1 stale=1 entries=2
}
