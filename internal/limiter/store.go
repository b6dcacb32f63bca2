package limiter

import (
	"sync"
	"time"
)

// pwSlots is how many failed passwords a pair remembers (Dovecot's anvil
// keeps the last 10 checksums per address).
const pwSlots = 8

// entry is the state of one key. Every field is guarded by its shard's
// lock.
type entry struct {
	key        string
	prev, next *entry // LRU list: shard.root.next is the most recently used
	kind       Kind
	blocked    bool
	win        window

	// KindIP: the failure-delay level (Dovecot's penalty: 0 to 4) and
	// when its last failure was, in seconds since the limiter started.
	level    uint8
	lastFail int32
	// KindPair: the last success (seconds since start, plus one; 0 means
	// never) and the hashes of the last failed passwords.
	lastOK int32
	pwNext uint8
	pwN    uint8
	pw     [pwSlots]uint32
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
	m       map[string]*entry
	root    entry // sentinel of the circular LRU list
	max     int
	blocked map[*entry]struct{}
}

func (s *shard) init(max int) {
	s.m = make(map[string]*entry)
	s.root.next, s.root.prev = &s.root, &s.root
	s.max = max
	s.blocked = make(map[*entry]struct{})
}

// get returns the entry for key, creating it (and evicting the least
// recently used entry when the shard is full), and marks it used. s.mu is
// held. evicted counts evictions.
func (s *shard) get(key string, kind Kind, evicted func()) *entry {
	if e := s.peek(key); e != nil {
		return e
	}
	if len(s.m) >= s.max {
		old := s.root.prev
		s.remove(old)
		evicted()
	}
	e := &entry{key: key, kind: kind}
	s.m[key] = e
	e.prev, e.next = &s.root, s.root.next
	s.root.next.prev = e
	s.root.next = e
	return e
}

// peek returns the entry for key, marking it used, or nil: unlike get,
// it never creates one. s.mu is held.
func (s *shard) peek(key string) *entry {
	e := s.m[key]
	if e != nil {
		s.toFront(e)
	}
	return e
}

func (s *shard) toFront(e *entry) {
	if s.root.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = &s.root, s.root.next
	s.root.next.prev = e
	s.root.next = e
}

func (s *shard) remove(e *entry) {
	delete(s.m, e.key)
	delete(s.blocked, e)
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}
