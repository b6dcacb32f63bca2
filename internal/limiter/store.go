package limiter

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// pwSlots is how many failed passwords a pair remembers (Dovecot's anvil
// keeps the last 10 checksums per address).
const pwSlots = 8

// A shard keeps its keys in one open-addressed table of entries, 64 bytes
// each, found by linear probing from a position taken from the key's ID
// (itself a keyed hash: no second hash, and nobody can aim keys at one
// run of the table). A probe reads a byte per slot, from an array beside
// the table (tags, 64 slots to a cache line), and only the entry whose tag
// matches. An entry holds what a known-good login reads and counts: such
// a login touches one cache line of the table (docs/performance.md,
// "Brute-force defence"). The rest
// of a key's state, needed for failures, leases and displays, is in a
// second array (coldEntry), and the keys' texts are in one byte buffer.
// None of the three holds a pointer: the collector does not walk a
// million keys in every cycle.

// entry is the hot state of one key; its zero ID marks a free slot. The
// fields are guarded by the shard's lock.
type entry struct {
	id  keyID
	win window
	// KindPair: the last success (seconds since start, plus one; 0 means
	// never).
	lastOK int32
	// used is the shard's tick when the entry was last used: the oldest
	// go first when the shard is full (evict).
	used uint32
	// cold is the index of the key's coldEntry.
	cold    uint32
	kind    Kind
	blocked bool
	// KindIP: the failure-delay level (Dovecot's penalty: 0 to 4).
	level uint8
	// KindPair: how many failed passwords it remembers (coldEntry.pw).
	pwN uint8
}

// coldEntry is the rest of a key's state.
type coldEntry struct {
	// KindPair with a shared store: the units of its budget the store
	// counted for this process (lease.go), usable until leaseUntil
	// (seconds since start), counted there at leaseSlot.
	leaseSlot  int64
	leaseUntil int32
	// KindIP: when the last failure was, in seconds since the limiter
	// started.
	lastFail int32
	// KindPair: the hashes of the last failed passwords.
	pw [pwSlots]uint32
	// The key's text, for logs and `authd penalty`: shard.text[off:off+n].
	off, n uint32
	pwNext uint8
	lease  uint8
}

// knownGood reports whether the pair logged in within d before now.
func (e *entry) knownGood(now, d time.Duration) bool {
	return e.lastOK != 0 && now-time.Duration(e.lastOK-1)*time.Second < d
}

// maxLoad is the share of a table's slots in use beyond which it grows; a
// full shard (max keys) fits in max/maxLoad slots.
const maxLoadNum, maxLoadDen = 3, 4

// evictSample is how many keys an eviction compares: the least recently
// used of them goes (an exact order would cost a list, whose links are
// cache lines every login writes; shards this small or smaller are exact).
const evictSample = 8

// shard is one lock's share of the keys. What a login writes of it comes
// first, within the cache line the lock is in: taking the lock brings
// that line to the login's core anyway. A known-good login writes
// nothing else (its pair's entry only when a second has passed since its
// last success). The entry's line is still the costly one to read: with
// many users it has left the caches since the user's last login
// (docs/performance.md, "Brute-force defence").
type shard struct {
	mu   sync.Mutex
	tick uint32 // counts uses; entry.used is its value at a use
	// fly counts the known-good logins in flight per pair (flying.go):
	// flyN[i] of the pair whose ID's low bits are flyID[i].
	flyID [flySlots]uint32
	flyN  [flySlots]uint8
	// flyOver: flyMore holds counts; flyWaiting: attempts wait on
	// flyWake for a login in flight to end.
	flyOver, flyWaiting bool
	// What follows is read by every login but written only when keys
	// come and go.
	//
	// tags[i] is 0 when slots[i] is free, else tagOf its key's ID.
	tags  []uint8
	slots []entry
	// view is tags and slots for Prefetch, which takes no lock.
	view atomic.Pointer[tableView]

	keys   *keyer
	tables *tableArena // where large tables come from (tables.go)
	n      int         // keys in slots
	max    int
	maxCap int
	hand   int // where the next eviction starts looking
	cold   []coldEntry
	free   []uint32 // unused indices of cold
	text   []byte
	dead   int // bytes of text no key uses any more
	// blocked lists the keys that refuse attempts now.
	blocked map[keyID]struct{}
	// flyMore counts the logins in flight of pairs the table had no
	// room for; flyWake[k] is closed when a login in flight of the pair
	// k ends, for the attempts waiting for a turn.
	flyMore map[uint32]int
	flyWake map[uint32]chan struct{}
	// The next shard's lock is on another cache line.
	_ [64]byte
}

func (s *shard) init(max int, keys *keyer, tables *tableArena) {
	s.keys, s.tables = keys, tables
	s.max = max
	// One slot more than max keys at the most, so that a probe always
	// ends on a free slot.
	s.maxCap = max*maxLoadDen/maxLoadNum + 1
	s.slots = tables.alloc(min(64, s.maxCap))
	s.tags = make([]uint8, len(s.slots))
	s.view.Store(&tableView{s.slots, s.tags})
	s.blocked = make(map[keyID]struct{})
}

// tagOf is the byte a probe compares before an entry: bits of the ID that
// the shard and the position are not taken from, never 0.
func tagOf(id keyID) uint8 { return uint8(id.a>>56) | 1 }

// home is where a probe for id starts.
func (s *shard) home(id keyID) int { return homeIn(id, len(s.slots)) }

// homeIn is where a probe for id starts in a table of n slots.
func homeIn(id keyID, n int) int {
	hi, _ := bits.Mul64(id.b, uint64(n))
	return int(hi)
}

// index is the slot of id, or -1. s.mu is held.
func (s *shard) index(id keyID) int {
	tag := tagOf(id)
	i := s.home(id)
	for {
		switch s.tags[i] {
		case tag:
			if s.slots[i].id == id {
				return i
			}
		case 0:
			return -1
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// freeSlot is the first free slot from id's home. s.mu is held.
func (s *shard) freeSlot(id keyID) int {
	i := s.home(id)
	for s.tags[i] != 0 {
		if i++; i == len(s.slots) {
			i = 0
		}
	}
	return i
}

// peek returns the entry for id, marking it used, or nil: unlike get, it
// never creates one. s.mu is held; the entry is valid until the shard
// changes (an insertion or removal).
func (s *shard) peek(id keyID) *entry {
	e := s.find(id)
	if e != nil {
		s.touch(e)
	}
	return e
}

// find is peek without marking the entry used: it writes nothing.
func (s *shard) find(id keyID) *entry {
	i := s.index(id)
	if i < 0 {
		return nil
	}
	return &s.slots[i]
}

// touch marks e used. s.mu is held.
func (s *shard) touch(e *entry) {
	s.tick++
	e.used = s.tick
}

// get returns the entry for id, whose key is key, creating it (and
// evicting the least recently used entry of a sample when the shard is
// full), and marks it used. s.mu is held. evicted counts evictions.
func (s *shard) get(id keyID, key string, kind Kind, evicted func()) *entry {
	if e := s.peek(id); e != nil {
		return e
	}
	return s.insert(id, key, kind, evicted)
}

// insert makes the entry for key, whose ID is id and which is not in the
// shard yet. s.mu is held.
func (s *shard) insert(id keyID, key string, kind Kind, evicted func()) *entry {
	if s.n >= s.max {
		s.evict()
		evicted()
	}
	if (s.n+1)*maxLoadDen > len(s.slots)*maxLoadNum && len(s.slots) < s.maxCap {
		s.grow(min(2*len(s.slots), s.maxCap))
	}
	i := s.freeSlot(id)
	s.tick++
	s.slots[i] = entry{id: id, kind: kind, used: s.tick, cold: s.newCold(key)}
	s.tags[i] = tagOf(id)
	s.n++
	return &s.slots[i]
}

// grow moves the keys to a table of size slots.
func (s *shard) grow(size int) {
	old := s.slots
	s.slots, s.tags = s.tables.alloc(size), make([]uint8, size)
	for k := range old {
		if old[k].id == (keyID{}) {
			continue
		}
		i := s.freeSlot(old[k].id)
		s.slots[i] = old[k]
		s.tags[i] = tagOf(old[k].id)
	}
	s.view.Store(&tableView{s.slots, s.tags})
	s.hand = 0
}

// evict removes the least recently used of the next evictSample keys
// from the hand, and moves the hand past them. s.mu is held and the shard
// is not empty.
func (s *shard) evict() {
	oldest, age := -1, uint32(0)
	i := s.hand
	for seen := 0; seen < evictSample && seen < s.n; {
		if e := &s.slots[i]; e.id != (keyID{}) {
			seen++
			if a := s.tick - e.used; oldest < 0 || a > age {
				oldest, age = i, a
			}
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
	s.hand = i
	s.removeAt(oldest)
}

// remove forgets e. s.mu is held.
func (s *shard) remove(e *entry) { s.removeAt(s.index(e.id)) }

// removeAt forgets the key in slot i, moving the keys after it back so
// that every probe still finds its key (deletion without tombstones).
func (s *shard) removeAt(i int) {
	e := &s.slots[i]
	delete(s.blocked, e.id)
	c := &s.cold[e.cold]
	s.dead += int(c.n)
	*c = coldEntry{}
	s.free = append(s.free, e.cold)
	s.n--
	for j := i; ; {
		if j++; j == len(s.slots) {
			j = 0
		}
		if s.tags[j] == 0 {
			break
		}
		// The key in j may move to i unless its probe starts after i
		// (cyclically, up to j).
		if h := s.home(s.slots[j].id); inCycle(i, h, j) {
			continue
		}
		s.slots[i], s.tags[i] = s.slots[j], s.tags[j]
		i = j
	}
	s.slots[i], s.tags[i] = entry{}, 0
}

// inCycle reports whether h is in (i, j], cyclically.
func inCycle(i, h, j int) bool {
	if i <= j {
		return i < h && h <= j
	}
	return i < h || h <= j
}

// coldOf is e's coldEntry. s.mu is held.
func (s *shard) coldOf(e *entry) *coldEntry { return &s.cold[e.cold] }

// keyText is e's key. s.mu is held.
func (s *shard) keyText(e *entry) string { return string(s.keyBytes(e)) }

// keyBytes is e's key in the shard's buffer, valid until the shard
// changes. s.mu is held.
func (s *shard) keyBytes(e *entry) []byte {
	c := s.coldOf(e)
	return s.text[c.off : c.off+c.n]
}

// newCold makes the coldEntry of a new key and returns its index.
func (s *shard) newCold(key string) uint32 {
	var i uint32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		if len(s.cold) == cap(s.cold) {
			// Grown by hand to stay within max entries: append could
			// double past it.
			c := make([]coldEntry, len(s.cold), min(max(2*cap(s.cold), 16), s.max))
			copy(c, s.cold)
			s.cold = c
		}
		i = uint32(len(s.cold))
		s.cold = s.cold[:i+1]
	}
	off := s.addText(key)
	s.cold[i] = coldEntry{off: off, n: uint32(len(key))}
	return i
}

// addText appends key to the texts and returns its offset. When the
// buffer is full and a quarter of it is texts of keys gone, the live
// texts move to a new buffer first.
func (s *shard) addText(key string) uint32 {
	if len(s.text)+len(key) > cap(s.text) {
		live := len(s.text) - s.dead
		buf := s.text
		if s.dead > len(s.text)/4 {
			buf = nil
		}
		t := make([]byte, 0, (live+len(key))*5/4+64)
		if buf == nil {
			t = s.compactInto(t)
		} else {
			t = append(t, buf...)
		}
		s.text = t
	}
	off := uint32(len(s.text))
	s.text = append(s.text, key...)
	return off
}

// compactInto copies the texts of the keys in the shard to t, which is
// empty, and points their entries at the copies.
func (s *shard) compactInto(t []byte) []byte {
	for k := range s.slots {
		if s.slots[k].id == (keyID{}) {
			continue
		}
		c := s.coldOf(&s.slots[k])
		off := uint32(len(t))
		t = append(t, s.text[c.off:c.off+c.n]...)
		c.off = off
	}
	s.dead = 0
	return t
}

// hasPassword reports whether h is among the pair's failed passwords.
func (s *shard) hasPassword(e *entry, h uint32) bool {
	if e.pwN == 0 {
		return false
	}
	for _, x := range s.coldOf(e).pw[:e.pwN] {
		if x == h {
			return true
		}
	}
	return false
}

// addPassword remembers a failed password, forgetting the oldest.
func (s *shard) addPassword(e *entry, h uint32) {
	if s.hasPassword(e, h) {
		return
	}
	c := s.coldOf(e)
	c.pw[c.pwNext] = h
	c.pwNext = (c.pwNext + 1) % pwSlots
	if e.pwN < pwSlots {
		e.pwN++
	}
}

// each calls f for every entry of the shard. s.mu is held; f must not add
// or remove keys.
func (s *shard) each(f func(e *entry)) {
	for k := range s.slots {
		if s.slots[k].id != (keyID{}) {
			f(&s.slots[k])
		}
	}
}
