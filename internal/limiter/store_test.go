package limiter

import (
	"strconv"
	"testing"
)

// TestApproximateLRU: an entry used again is kept over the ones nobody
// used, whether it had to move to the front or was near it already; the
// one evicted is always one nobody used since.
func TestApproximateLRU(t *testing.T) {
	var s shard
	s.init(160) // slack 10
	evictions := 0
	noted := func() { evictions++ }
	key := func(i int) string { return "k" + strconv.Itoa(i) }
	for i := range 160 {
		s.get(key(i), KindIP, noted)
	}
	// k0 is the oldest: far from the front, it moves. k155 was made
	// among the last ten: it stays where it is.
	s.peek(key(0))
	front := s.root.next
	s.peek(key(155))
	if s.root.next != front {
		t.Errorf("an entry moved within the slack went to the front again")
	}
	for i := 160; i < 170; i++ {
		s.get(key(i), KindIP, noted)
	}
	if evictions != 10 {
		t.Fatalf("%d evictions, want 10", evictions)
	}
	for _, k := range []int{0, 155} {
		if s.m[key(k)] == nil {
			t.Errorf("%s was used and then evicted", key(k))
		}
	}
	for i := 1; i <= 10; i++ {
		if s.m[key(i)] != nil {
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
	s.init(4)
	for _, k := range []string{"a", "b", "c", "d"} {
		s.get(k, KindIP, func() {})
	}
	s.peek("c")
	if s.root.next.key != "c" {
		t.Fatalf("front is %q, want c", s.root.next.key)
	}
	s.peek("a")
	s.get("e", KindIP, func() {}) // evicts b
	if s.m["b"] != nil || s.m["a"] == nil {
		t.Errorf("wrong entry evicted: %v", s.m)
	}
}
