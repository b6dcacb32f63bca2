package cache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/fields"
)

// clock is a fake clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func pos(data string, fs ...string) Entry {
	e := Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: data}
	for _, f := range fs {
		k, v, _ := strings.Cut(f, "=")
		e.Fields = append(e.Fields, fields.Field{Key: k, Value: v})
	}
	return e
}

func testCache(t *testing.T, clk *clock, o Options) *Cache {
	t.Helper()
	if o.MaxBytes == 0 {
		o.MaxBytes = 1 << 20
	}
	if o.TTL == 0 {
		o.TTL = time.Hour
	}
	o.Now = clk.Now
	c := New(o)
	if c == nil {
		t.Fatal("New returned nil")
	}
	return c
}

func TestNewDisabled(t *testing.T) {
	for _, o := range []Options{
		{},
		{MaxBytes: 0, TTL: time.Hour},
		{MaxBytes: 1 << 20, TTL: 0},
		{MaxBytes: -1, TTL: time.Hour},
	} {
		if c := New(o); c != nil {
			t.Errorf("New(%+v) = %p, want nil", o, c)
		}
	}
	// Every method is safe on the nil cache.
	var c *Cache
	c.Store("P1\tu", pos("x"))
	if e, fresh, found := c.Lookup("P1\tu"); e != nil || fresh || found {
		t.Errorf("nil Lookup = %v %v %v", e, fresh, found)
	}
	if n := c.Flush(nil); n != 0 {
		t.Errorf("nil Flush = %d", n)
	}
	e := pos("x")
	c.rememberPassword("P1\tu", &e, []byte("pw"))
	if c.passwordMatches("P1\tu", &e, []byte("pw")) {
		t.Error("nil PasswordMatches = true")
	}
	c.markResult("P1\tu", &e, true)
	if c.lastSucceeded("P1\tu") {
		t.Error("nil LastSucceeded = true")
	}
	if !c.recheckAfterMismatch("P1\tu", &e) {
		t.Error("nil RecheckAfterMismatch = false")
	}
	c.noteStale()
	if st := c.Stats(); st != (Stats{}) {
		t.Errorf("nil Stats = %+v", st)
	}
}

func TestShardCount(t *testing.T) {
	for _, tc := range []struct {
		max  int64
		want int
	}{
		{1024, 1}, {1<<21 - 1, 1}, {2 << 20, 2}, {10 << 20, 8}, {16 << 20, 16}, {1 << 30, 16},
	} {
		c := New(Options{MaxBytes: tc.max, TTL: time.Hour})
		if got := len(c.shards); got != tc.want {
			t.Errorf("MaxBytes %d: %d shards, want %d", tc.max, got, tc.want)
		}
		if st := c.Stats(); st.MaxBytes > tc.max {
			t.Errorf("MaxBytes %d: shards' budgets add up to %d", tc.max, st.MaxBytes)
		}
	}
}

func TestExpiry(t *testing.T) {
	const ttl, negTTL = 10 * time.Minute, 2 * time.Minute
	tests := []struct {
		name      string
		entry     Entry
		after     time.Duration
		wantFound bool
		wantFresh bool
	}{
		{"positive new", pos("h"), 0, true, true},
		{"positive before ttl", pos("h"), ttl - time.Second, true, true},
		{"positive at ttl", pos("h"), ttl, true, false},
		{"positive long expired", pos("h"), 100 * ttl, true, false},
		{"negative new", Entry{Negative: true}, 0, true, true},
		{"negative before negttl", Entry{Negative: true}, negTTL - time.Nanosecond, true, true},
		{"negative at negttl", Entry{Negative: true}, negTTL, true, false},
		// The positive TTL does not apply to negative entries.
		{"negative past negttl within ttl", Entry{Negative: true}, ttl - time.Second, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			c := testCache(t, clk, Options{TTL: ttl, NegativeTTL: negTTL})
			c.Store("P1\talice", tc.entry)
			clk.Advance(tc.after)
			e, fresh, found := c.Lookup("P1\talice")
			if found != tc.wantFound || fresh != tc.wantFresh {
				t.Fatalf("Lookup: found=%v fresh=%v, want %v %v", found, fresh, tc.wantFound, tc.wantFresh)
			}
			if e.Negative != tc.entry.Negative || e.Data != tc.entry.Data {
				t.Errorf("Lookup = %+v, want %+v", *e, tc.entry)
			}
			st := c.Stats()
			if tc.wantFresh && (st.Hits != 1 || st.Misses != 0) || !tc.wantFresh && (st.Hits != 0 || st.Misses != 1) {
				t.Errorf("stats %+v", st)
			}
			if tc.wantFresh && tc.entry.Negative && st.NegativeHits != 1 {
				t.Errorf("NegativeHits = %d", st.NegativeHits)
			}
		})
	}
}

func TestStaleKeptAndRefreshed(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{TTL: time.Minute, NegativeTTL: time.Minute})
	c.Store("P1\tbob", pos("old", "uid=1"))
	clk.Advance(time.Hour)
	// Expired entries stay until something removes them, and every Lookup
	// reports them as not fresh.
	for range 3 {
		e, fresh, found := c.Lookup("P1\tbob")
		if !found || fresh || e.Data != "old" {
			t.Fatalf("stale Lookup = %+v fresh=%v found=%v", e, fresh, found)
		}
	}
	c.noteStale()
	if st := c.Stats(); st.StaleHits != 1 || st.Misses != 3 || st.Entries != 1 {
		t.Errorf("stats %+v", st)
	}
	// A Store (the backend answered again) makes it fresh.
	c.Store("P1\tbob", pos("old", "uid=1"))
	if _, fresh, _ := c.Lookup("P1\tbob"); !fresh {
		t.Error("refreshed entry not fresh")
	}
	if _, _, found := c.Lookup("P1\tnobody"); found {
		t.Error("found an entry never stored")
	}
}

func TestStoreCopiesAndNormalises(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{NegativeTTL: time.Minute})
	e := pos("h", "uid=1", "home=/x")
	c.Store("U1\tcarol", e)
	e.Fields[0].Value = "changed" // the caller keeps ownership
	got, _, _ := c.Lookup("U1\tcarol")
	if v, _ := got.Fields.Get("uid"); v != "1" {
		t.Errorf("cached uid = %q after the caller changed its copy", v)
	}
	// A negative entry carries nothing else.
	c.Store("P1\tdan", Entry{Negative: true, Data: "junk", Fields: fields.Fields{{Key: "a"}}})
	got, _, _ = c.Lookup("P1\tdan")
	if !got.Negative || got.Data != "" || got.Fields != nil {
		t.Errorf("negative entry = %+v", *got)
	}
	if st := c.Stats(); st.NegativeEntries != 1 || st.NegativeBytes != entrySize("P1\tdan", &Entry{Negative: true}) {
		t.Errorf("stats %+v", st)
	}
}

func TestNegativeTTLZero(t *testing.T) {
	clk := newClock()
	c := testCache(t, clk, Options{TTL: time.Minute})
	c.Store("P1\teve", Entry{Negative: true})
	if _, _, found := c.Lookup("P1\teve"); found {
		t.Fatal("negative entry stored with NegativeTTL 0")
	}
	// A user deleted since: the "unknown" answer must remove the old
	// positive entry, or it would be served stale in a later outage.
	c.Store("P1\teve", pos("h"))
	clk.Advance(time.Hour)
	c.Store("P1\teve", Entry{Negative: true})
	if _, _, found := c.Lookup("P1\teve"); found {
		t.Error("old positive entry survived a negative answer")
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestLRUEviction(t *testing.T) {
	clk := newClock()
	one := entrySize("P1\tuser0", &Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: "h"})
	// Room for exactly 4 entries, and one shard, so the order is global.
	c := testCache(t, clk, Options{MaxBytes: 4*one + one/2})
	if len(c.shards) != 1 {
		t.Fatalf("%d shards", len(c.shards))
	}
	key := func(i int) string { return fmt.Sprintf("P1\tuser%d", i) }
	for i := range 4 {
		c.Store(key(i), pos("h"))
	}
	// Use 0 and 2: the least recently used are now 1, then 3.
	c.Lookup(key(0))
	c.Lookup(key(2))
	c.Store(key(4), pos("h"))
	c.Store(key(5), pos("h"))
	for i, want := range []bool{true, false, true, false, true, true} {
		if _, _, found := c.Lookup(key(i)); found != want {
			t.Errorf("%s: found=%v, want %v", key(i), found, want)
		}
	}
	st := c.Stats()
	if st.Evictions != 2 || st.Entries != 4 || st.Bytes != 4*one || st.Bytes > st.MaxBytes {
		t.Errorf("stats %+v, entry %d", st, one)
	}
	// Replacing an entry frees its old size first; it is not an eviction.
	c.Store(key(0), pos("i"))
	if st := c.Stats(); st.Evictions != 2 || st.Bytes != 4*one {
		t.Errorf("after replace: %+v", st)
	}
}

func TestExpiredNotPromoted(t *testing.T) {
	clk := newClock()
	one := entrySize("P1\tuser0", &Entry{HasPassword: true, Scheme: "SHA512-CRYPT", Data: "h"})
	c := testCache(t, clk, Options{MaxBytes: 2*one + one/2, TTL: time.Minute})
	c.Store("P1\tuser0", pos("h"))
	clk.Advance(2 * time.Minute)
	c.Store("P1\tuser1", pos("h"))
	// An expired hit is a fallback, not a use: user0 stays the LRU one.
	c.Lookup("P1\tuser0")
	c.Store("P1\tuser2", pos("h"))
	if _, _, found := c.Lookup("P1\tuser0"); found {
		t.Error("expired entry was promoted by Lookup")
	}
}

func TestByteBudget(t *testing.T) {
	clk := newClock()
	for _, shards := range []int{1, 4} {
		c := newSharded(Options{MaxBytes: 64 << 10, TTL: time.Hour, NegativeTTL: time.Hour, Now: clk.Now}, shards)
		var want int64
		for i := range 5000 {
			k := fmt.Sprintf("P1\tuser%d@example.com", i)
			var e Entry
			switch i % 3 {
			case 0:
				e = Entry{Negative: true}
			case 1:
				e = pos(strings.Repeat("x", i%200), "userdb_home=/var/mail/"+k[3:])
			default:
				e = Entry{Fields: fields.Fields{{Key: "uid", Value: "5000"}, {Key: "mail", Value: strings.Repeat("m", i%50)}}}
			}
			c.Store(k, e)
			st := c.Stats()
			if st.Bytes > 64<<10 {
				t.Fatalf("%d shards, after %d stores: %d bytes > budget", shards, i, st.Bytes)
			}
		}
		// The counters agree with the entries actually there.
		for i := range c.shards {
			s := &c.shards[i]
			for n := s.root.next; n != &s.root; n = n.next {
				want += entrySize(n.key, &n.Entry)
			}
		}
		if st := c.Stats(); st.Bytes != want || st.Entries == 0 {
			t.Errorf("%d shards: Bytes %d, recomputed %d (%+v)", shards, st.Bytes, want, st)
		}
	}
	// An entry bigger than the whole budget is not stored, and removes the
	// one it would have replaced.
	c := newSharded(Options{MaxBytes: 4096, TTL: time.Hour, Now: clk.Now}, 1)
	c.Store("P1\tbig", pos("small"))
	c.Store("P1\tbig", pos(strings.Repeat("x", 5000)))
	if _, _, found := c.Lookup("P1\tbig"); found {
		t.Error("oversized entry, or the old one, is cached")
	}
}

func TestFlush(t *testing.T) {
	keys := []string{
		"P1\talice",                   // %n: not flushed by alice@example.com
		"P1\talice@example.com",       // %u
		"P1\talice@example.com\timap", // %u %s
		"U2\talice@example.com",       // userdb
		"P3+admin\talice@example.com", // master user
		"P1\talice@example.comx",      // a longer name
		"P1\tbob@example.com",
		"P12\talice@example.com\t10.0.0.1",
		"X1\talice@example.com", // not a cache key
		"P1alice@example.com",   // no TAB
		"P1\ttab\x01tname",      // a name with a TAB, tab-escaped in the key
	}
	tests := []struct {
		users []string
		want  []string // flushed
	}{
		{[]string{"alice@example.com"}, []string{
			"P1\talice@example.com", "P1\talice@example.com\timap", "U2\talice@example.com",
			"P3+admin\talice@example.com", "P12\talice@example.com\t10.0.0.1",
		}},
		{[]string{"alice"}, []string{"P1\talice"}},
		{[]string{"bob@example.com", "nobody"}, []string{"P1\tbob@example.com"}},
		{[]string{"tab\tname"}, []string{"P1\ttab\x01tname"}},
		{[]string{"tab"}, nil},
		{nil, keys},
		{[]string{}, keys},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.users), func(t *testing.T) {
			clk := newClock()
			c := testCache(t, clk, Options{MaxBytes: 64 << 20, NegativeTTL: time.Hour, Fingerprint: true})
			for _, k := range keys {
				c.Store(k, pos("h"))
				e, _, _ := c.Lookup(k)
				c.rememberPassword(k, e, []byte("pw"))
			}
			if got := c.Flush(tc.users); got != len(tc.want) {
				t.Errorf("Flush = %d, want %d", got, len(tc.want))
			}
			gone := map[string]bool{}
			for _, k := range tc.want {
				gone[k] = true
			}
			for _, k := range keys {
				e, _, found := c.Lookup(k)
				if found == gone[k] {
					t.Errorf("%q: found=%v after flush", k, found)
				}
				if found && !c.passwordMatches(k, e, []byte("pw")) {
					t.Errorf("%q: kept entry lost its fingerprint", k)
				}
			}
			st := c.Stats()
			if st.Entries != int64(len(keys)-len(tc.want)) {
				t.Errorf("Entries = %d", st.Entries)
			}
			// A flushed entry stored again has no fingerprint.
			for _, k := range tc.want {
				e := pos("h")
				c.Store(k, e)
				if c.passwordMatches(k, &e, []byte("pw")) {
					t.Errorf("%q: fingerprint survived the flush", k)
				}
			}
		})
	}
}

func TestSecretInKey(t *testing.T) {
	for tmpl, want := range map[string]bool{
		"%u":                          false,
		"%u\t%s":                      false,
		"%n\t%d\t%{passdb:uid}":       false,
		"%{userdb:home}":              false,
		"%w":                          true,
		"%u\t%w":                      true,
		"%u\t%{password}":             true,
		"%u\t%{md5:password}":         true,
		"%u\t%{passdb:password}":      true,
		"%{if;%Lw;eq;x;a;b}":          true,
		"%{if;%{passdb:uid};eq;1;a}":  false,
		"%u\t%{unterminated":          true,
		"%u\t%{PASSDB:userdb_passwd}": true,
	} {
		if got := SecretInKey(tmpl); got != want {
			t.Errorf("SecretInKey(%q) = %v, want %v", tmpl, got, want)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	// Exercised under -race: every method at once on shared keys.
	clk := newClock()
	c := newSharded(Options{MaxBytes: 32 << 10, TTL: time.Minute, NegativeTTL: time.Minute, Fingerprint: true, Now: clk.Now}, 4)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := fmt.Sprintf("P1\tu%d", i%50)
				switch (i + g) % 7 {
				case 0:
					c.Store(k, pos(fmt.Sprint(i%3), "uid=1"))
				case 1:
					if e, _, ok := c.Lookup(k); ok {
						c.rememberPassword(k, e, []byte("pw"))
						_ = e.Data + e.Scheme // read the shared entry unlocked
						for _, f := range e.Fields {
							_ = f.Key + f.Value
						}
					}
				case 2:
					if e, _, ok := c.Lookup(k); ok {
						c.passwordMatches(k, e, []byte("pw"))
						c.markResult(k, e, i%2 == 0)
						c.recheckAfterMismatch(k, e)
					}
				case 3:
					c.Store(k, Entry{Negative: true})
				case 4:
					if i%100 == 0 {
						c.Flush([]string{fmt.Sprintf("u%d", i%50)})
					}
				case 5:
					c.lastSucceeded(k)
					c.Stats()
				case 6:
					clk.Advance(time.Second)
				}
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > st.MaxBytes || st.Bytes < 0 || st.Entries < 0 {
		t.Errorf("stats %+v", st)
	}
}
