package limiter

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"unsafe"
)

// TestApproximateLRU: a key used again is kept over the ones nobody used,
// and every key evicted is one nobody used since the table filled.
func TestApproximateLRU(t *testing.T) {
	var s shard
	s.init(160, newKeyer(), new(tableArena))
	evictions := 0
	noted := func() { evictions++ }
	key := func(i int) string { return "k" + strconv.Itoa(i) }
	for i := range 160 {
		s.getKey(key(i), KindIP, noted)
	}
	// Every key but k0 and k155 is older than the new ones.
	s.peekKey(key(0))
	s.peekKey(key(155))
	for i := 160; i < 170; i++ {
		s.getKey(key(i), KindIP, noted)
	}
	if evictions != 10 {
		t.Fatalf("%d evictions, want 10", evictions)
	}
	for _, k := range []int{0, 155, 160, 165, 169} {
		if !s.hasKey(key(k)) {
			t.Errorf("%s was used lately and then evicted", key(k))
		}
	}
	if s.n != 160 {
		t.Errorf("%d entries, want 160", s.n)
	}
	checkTable(t, &s, 170, key)
}

// TestExactLRUInSmallShards: a shard no larger than an eviction's sample
// evicts the least recently used key.
func TestExactLRUInSmallShards(t *testing.T) {
	var s shard
	s.init(4, newKeyer(), new(tableArena))
	for _, k := range []string{"a", "b", "c", "d"} {
		s.getKey(k, KindIP, func() {})
	}
	s.peekKey("c")
	s.peekKey("a")
	s.getKey("e", KindIP, func() {}) // evicts b
	if s.hasKey("b") || !s.hasKey("a") || !s.hasKey("e") {
		t.Errorf("wrong entry evicted")
	}
	s.getKey("f", KindIP, func() {}) // evicts d
	if s.hasKey("d") || !s.hasKey("c") {
		t.Errorf("wrong entry evicted")
	}
}

// TestTableChurn: keys come and go (evictions, removals, growth, the
// texts' compaction) and every key in the table is still found, with its
// own text, and no key gone is.
func TestTableChurn(t *testing.T) {
	var s shard
	s.init(500, newKeyer(), new(tableArena))
	key := func(i int) string { return "key number " + strconv.Itoa(i) }
	for i := range 5000 {
		s.getKey(key(i), KindAccount, func() {})
		if i%7 == 0 {
			if e := s.peekKey(key(i / 2)); e != nil {
				s.remove(e)
			}
		}
	}
	checkTable(t, &s, 5000, key)
	if len(s.slots) > s.maxCap || cap(s.cold) > s.max {
		t.Errorf("%d slots (at most %d), %d cold entries (at most %d)", len(s.slots), s.maxCap, cap(s.cold), s.max)
	}
	if live := len(s.text) - s.dead; cap(s.text) > 2*live+64 {
		t.Errorf("%d bytes of texts for %d live ones", cap(s.text), live)
	}
}

// checkTable checks that the n keys key(0..n-1) that the table holds are
// found by their IDs and carry their own texts, and that the table holds
// s.n of them.
func checkTable(t *testing.T, s *shard, n int, key func(int) string) {
	t.Helper()
	found := 0
	for i := range n {
		e := s.peekKey(key(i))
		if e == nil {
			continue
		}
		found++
		if got := s.keyText(e); got != key(i) {
			t.Errorf("%s has the text %q", key(i), got)
		}
	}
	held := 0
	s.each(func(*entry) { held++ })
	if found != s.n || held != s.n {
		t.Errorf("%d keys found by ID, %d in the table, %d counted", found, held, s.n)
	}
}

// The hot state is one cache line.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n != 64 {
		t.Errorf("an entry is %d bytes, want 64", n)
	}
}

// getKey, peekKey and hasKey look keys up by their text.
func (s *shard) getKey(key string, kind Kind, evicted func()) *entry {
	return s.get(s.keys.id(key), key, kind, evicted)
}

func (s *shard) peekKey(key string) *entry { return s.peek(s.keys.id(key)) }

func (s *shard) hasKey(key string) bool { return s.index(s.keys.id(key)) >= 0 }

// Two keys, one ID each: a pair's ID from the stack buffer is the ID of
// its key's text, and neither collides with the other kinds' keys.
func TestKeyIDs(t *testing.T) {
	k := newKeyer()
	ip := netip.MustParseAddr("192.0.2.7")
	var buf [8]byte // too small: append goes to the heap, same bytes
	if got, want := k.idBytes(appendPairKey(buf[:0], "someone@example.com", ip)), k.id(pairKey("someone@example.com", ip)); got != want {
		t.Errorf("pair ID from the buffer %v, from the key %v", got, want)
	}
	seen := map[keyID]string{}
	for _, key := range []string{ipKey(ip), prefixKey(ip), accountKey("someone"), pairKey("someone", ip), pairKey("someone", netip.Addr{}), pairKey("someon", ip)} {
		id := k.id(key)
		if other, dup := seen[id]; dup {
			t.Errorf("%q and %q share an ID", key, other)
		}
		seen[id] = key
	}
	if newKeyer().id("x") == k.id("x") {
		t.Error("two limiters share the key IDs: the seeds are not random")
	}
}

// What a login writes of its shard (the lock, the use counter, the
// counts in flight) is in the lock's cache line.
func TestShardHotFields(t *testing.T) {
	var s shard
	if end := unsafe.Offsetof(s.flyN) + unsafe.Sizeof(s.flyN); end > 64 {
		t.Errorf("the fields a login writes end at byte %d, past the lock's cache line", end)
	}
}

// The table of logins in flight counts exactly whatever the mix: more
// pairs than its slots, more than 255 logins of one pair, and limits.
func TestFlyTable(t *testing.T) {
	var s shard
	ref := map[keyID]int{}
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]keyID, 25)
	for i := range ids {
		ids[i] = keyID{a: uint64(i), b: uint64(i) * 0x9e3779b97f4a7c15}
	}
	sawOver, most := false, 0
	for op := range 200000 {
		// Three hot pairs, taken more than ended, pass 255 in flight.
		i := rng.IntN(len(ids))
		ends := rng.IntN(2) == 0
		if i < 3 {
			ends = rng.IntN(3) == 0 && ref[ids[i]] > 400
		}
		id := ids[i]
		switch limit := rng.IntN(400); {
		case ends && ref[id] > 0:
			s.flyDone(id)
			ref[id]--
		default:
			took := s.flyTake(id, limit)
			if want := limit == 0 || ref[id] < limit; took != want {
				t.Fatalf("op %d: take with %d in flight, limit %d: %v", op, ref[id], limit, took)
			}
			if took {
				ref[id]++
			}
		}
		if got := s.flying(id); got != ref[id] {
			t.Fatalf("op %d: %d in flight, want %d", op, got, ref[id])
		}
		sawOver = sawOver || s.flyOver
		most = max(most, ref[id])
	}
	if !sawOver || most <= math.MaxUint8 {
		t.Fatalf("the mix missed the map (%v) or the count's limit (most %d)", sawOver, most)
	}
	for _, id := range ids {
		for range ref[id] {
			s.flyDone(id)
		}
	}
	if s.flyOver || len(s.flyMore) != 0 || s.flyN != [flySlots]uint8{} {
		t.Errorf("not empty after every login ended: over %v, map %v, table %v", s.flyOver, s.flyMore, s.flyN)
	}
}

// A login in flight that ends wakes the attempts waiting on its own pair
// only.
func TestFlyWake(t *testing.T) {
	var s shard
	p, q := keyID{a: 1, b: 1}, keyID{a: 2, b: 2}
	s.flyTake(p, 0)
	s.flyTake(q, 0)
	ch := s.flyWait(p)
	closed := func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	s.flyDone(q)
	if closed() {
		t.Fatal("another pair's end woke the waiter")
	}
	s.flyDone(p)
	if !closed() || s.flyWaiting || len(s.flyWake) != 0 {
		t.Fatalf("the pair's end: woken %v, still waiting %v (%d)", closed(), s.flyWaiting, len(s.flyWake))
	}
}
