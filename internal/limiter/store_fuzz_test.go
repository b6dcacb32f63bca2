package limiter

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzShardTable drives a small shard through insertions, lookups,
// removals, evictions, growth and the texts' compaction, and checks the
// table after every step: every key it holds is found by its ID from its
// home slot (removal's backward shift kept every probe whole), with its own
// text; a key removed is not found; the counts of keys, cold entries and
// live text bytes agree.
func FuzzShardTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 64, 65, 128, 129, 192, 5, 6, 7})
	f.Add([]byte(strings.Repeat("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x20\x21", 3)))
	f.Fuzz(func(t *testing.T, ops []byte) {
		var s shard
		s.init(24, newKeyer(), new(tableArena))
		key := func(i byte) string { return "key " + strconv.Itoa(int(i)) + strings.Repeat("x", int(i)%7) }
		in := map[string]bool{}
		for _, op := range ops {
			k := key(op & 63)
			switch op >> 6 {
			case 0, 1: // get (insert when missing)
				if !in[k] && s.n == s.max {
					before := s.n
					s.getKey(k, KindIP, func() {})
					if s.n != before {
						t.Fatalf("a full shard grew to %d keys", s.n)
					}
					in = s.present(key)
				} else {
					s.getKey(k, KindIP, func() {})
				}
				in[k] = true
			case 2: // remove
				if e := s.peekKey(k); e != nil {
					s.remove(e)
				}
				delete(in, k)
			case 3: // look up only
				if (s.peekKey(k) != nil) != in[k] {
					t.Fatalf("%q: found %v, want %v", k, !in[k], in[k])
				}
			}
			s.check(t, in, key)
		}
	})
}

// present is the set of keys key(0..63) the shard holds.
func (s *shard) present(key func(byte) string) map[string]bool {
	m := map[string]bool{}
	for i := range byte(64) {
		if s.hasKey(key(i)) {
			m[key(i)] = true
		}
	}
	return m
}

// check compares the shard with the keys it should hold.
func (s *shard) check(t *testing.T, want map[string]bool, key func(byte) string) {
	t.Helper()
	live, held := 0, 0
	s.each(func(e *entry) {
		held++
		if s.index(e.id) < 0 {
			t.Fatalf("the key in a slot is not found from its home")
		}
		if got := s.keyText(e); !want[got] {
			t.Fatalf("the table holds %q, which it should not", got)
		}
		live += len(s.keyText(e))
	})
	for i := range byte(64) {
		k := key(i)
		e := s.peek(s.keys.id(k))
		if (e != nil) != want[k] {
			t.Fatalf("%q: found %v, want %v", k, e != nil, want[k])
		}
		if e != nil && s.keyText(e) != k {
			t.Fatalf("%q has the text %q", k, s.keyText(e))
		}
	}
	if held != s.n || s.n != len(want) || s.n > s.max {
		t.Fatalf("%d keys in slots, %d counted, %d expected, at most %d", held, s.n, len(want), s.max)
	}
	if used := len(s.cold) - len(s.free); used != s.n {
		t.Fatalf("%d cold entries in use for %d keys", used, s.n)
	}
	if got := len(s.text) - s.dead; got != live {
		t.Fatalf("%d live text bytes counted, %d held", got, live)
	}
}
