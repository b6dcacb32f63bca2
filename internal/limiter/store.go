package limiter

import (
	"sync"
	"time"
)

// pwSlots is how many failed passwords a pair remembers (Dovecot's anvil
// keeps the last 10 checksums per address).
const pwSlots = 8

// entry is the state of one key. Every field is guarded by its shard's
// lock. The fields are ordered to pack, a million keys must fit in about
// 200 MB (docs/operations.md §7), and so that a known-good login, which
// reads and counts its pair, touches the entry's first 64 bytes only: the
// entry is not in the CPU's cache when a login starts, and each line of
// it is a miss.
type entry struct {
	win window
	// KindPair: the last success (seconds since start, plus one; 0 means
	// never).
	lastOK int32
	// moved is the shard's move count when the entry last went to the
	// front of the LRU list (toFront).
	moved   uint32
	kind    Kind
	blocked bool
	// KindIP: the failure-delay level (Dovecot's penalty: 0 to 4).
	level  uint8
	pwNext uint8
	pwN    uint8
	// KindPair with a shared store: the units of its budget the store
	// counted for this process (lease.go), usable until leaseUntil
	// (seconds since start), counted there at leaseSlot.
	lease uint8
	// KindIP: when the last failure was, in seconds since the limiter
	// started.
	lastFail   int32
	leaseUntil int32
	leaseSlot  int64

	// Past the first 64 bytes: what a failure or a new entry needs.
	key        string
	prev, next *entry // LRU list: shard.root.next is the most recently used
	// KindPair: the hashes of the last failed passwords.
	pw [pwSlots]uint32
}

// hasPassword reports whether h is among the pair's failed passwords.
func (e *entry) hasPassword(h uint32) bool {
	for _, x := range e.pw[:e.pwN] {
		if x == h {
			return true
		}
	}
	return false
}

// addPassword remembers a failed password, forgetting the oldest.
func (e *entry) addPassword(h uint32) {
	if e.hasPassword(h) {
		return
	}
	e.pw[e.pwNext] = h
	e.pwNext = (e.pwNext + 1) % pwSlots
	if e.pwN < pwSlots {
		e.pwN++
	}
}

// knownGood reports whether the pair logged in within d before now.
func (e *entry) knownGood(now, d time.Duration) bool {
	return e.lastOK != 0 && now-time.Duration(e.lastOK-1)*time.Second < d
}

// shard is one lock's share of the keys.
type shard struct {
	mu      sync.Mutex
	m       map[keyID]*entry
	keys    *keyer
	root    entry // sentinel of the circular LRU list
	max     int
	blocked map[*entry]struct{}
	// moves counts moves to the front; an entry moved within the last
	// slack moves stays where it is (toFront).
	moves uint32
	slack uint32
}

func (s *shard) init(max int, keys *keyer) {
	s.m = make(map[keyID]*entry)
	s.keys = keys
	s.root.next, s.root.prev = &s.root, &s.root
	s.max = max
	s.slack = uint32(max / 16)
	s.blocked = make(map[*entry]struct{})
}

// get returns the entry for key, creating it (and evicting the least
// recently used entry when the shard is full), and marks it used. s.mu is
// held. evicted counts evictions.
func (s *shard) get(id keyID, key string, kind Kind, evicted func()) *entry {
	if e := s.peek(id); e != nil {
		return e
	}
	return s.insert(id, key, kind, evicted)
}

// insert makes the entry for key, whose ID is id and which is not in the
// shard yet. s.mu is held.
func (s *shard) insert(id keyID, key string, kind Kind, evicted func()) *entry {
	if len(s.m) >= s.max {
		old := s.root.prev
		s.remove(old)
		evicted()
	}
	s.moves++
	e := &entry{key: key, kind: kind, moved: s.moves}
	s.m[id] = e
	e.prev, e.next = &s.root, s.root.next
	s.root.next.prev = e
	s.root.next = e
	return e
}

// peek returns the entry for key, marking it used, or nil: unlike get,
// it never creates one. s.mu is held.
func (s *shard) peek(id keyID) *entry {
	e := s.m[id]
	if e != nil {
		s.toFront(e)
	}
	return e
}

// toFront marks e used. Moving an entry writes to its neighbours and to
// the list's head, cache lines that the other logins of the shard then
// miss; an entry moved within the last slack moves (a sixteenth of the
// shard) is near the front already and stays. The far end, where eviction
// takes from, is thus least recently used within that margin; small
// shards (slack 0) keep the exact order.
func (s *shard) toFront(e *entry) {
	if s.root.next == e || s.moves-e.moved < s.slack {
		return
	}
	s.moves++
	e.moved = s.moves
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &s.root, s.root.next
	s.root.next.prev = e
	s.root.next = e
}

func (s *shard) remove(e *entry) {
	delete(s.m, s.keys.id(e.key))
	delete(s.blocked, e)
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}
