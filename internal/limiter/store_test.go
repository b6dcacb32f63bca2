package limiter

import (
	"net/netip"
	"strconv"
	"testing"
)

// TestApproximateLRU: an entry used again is kept over the ones nobody
// used, whether it had to move to the front or was near it already; the
// one evicted is always one nobody used since.
func TestApproximateLRU(t *testing.T) {
	var s shard
	s.init(160, newKeyer()) // slack 10
	evictions := 0
	noted := func() { evictions++ }
	key := func(i int) string { return "k" + strconv.Itoa(i) }
	for i := range 160 {
		s.getKey(key(i), KindIP, noted)
	}
	// k0 is the oldest: far from the front, it moves. k155 was made
	// among the last ten: it stays where it is.
	s.peekKey(key(0))
	front := s.root.next
	s.peekKey(key(155))
	if s.root.next != front {
		t.Errorf("an entry moved within the slack went to the front again")
	}
	for i := 160; i < 170; i++ {
		s.getKey(key(i), KindIP, noted)
	}
	if evictions != 10 {
		t.Fatalf("%d evictions, want 10", evictions)
	}
	for _, k := range []int{0, 155} {
		if s.m[s.keys.id(key(k))] == nil {
			t.Errorf("%s was used and then evicted", key(k))
		}
	}
	for i := 1; i <= 10; i++ {
		if s.m[s.keys.id(key(i))] != nil {
			t.Errorf("%s, the least recently used, was kept", key(i))
		}
	}
	if len(s.m) != 160 {
		t.Errorf("%d entries, want 160", len(s.m))
	}
}

// TestExactLRUInSmallShards: a shard too small for slack keeps the exact
// order.
func TestExactLRUInSmallShards(t *testing.T) {
	var s shard
	s.init(4, newKeyer())
	for _, k := range []string{"a", "b", "c", "d"} {
		s.getKey(k, KindIP, func() {})
	}
	s.peekKey("c")
	if s.root.next.key != "c" {
		t.Fatalf("front is %q, want c", s.root.next.key)
	}
	s.peekKey("a")
	s.getKey("e", KindIP, func() {}) // evicts b
	if s.m[s.keys.id("b")] != nil || s.m[s.keys.id("a")] == nil {
		t.Errorf("wrong entry evicted")
	}
}

// getKey and peekKey are get and peek by the key's text.
func (s *shard) getKey(key string, kind Kind, evicted func()) *entry {
	return s.get(s.keys.id(key), key, kind, evicted)
}

func (s *shard) peekKey(key string) *entry { return s.peek(s.keys.id(key)) }

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
