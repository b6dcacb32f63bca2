package cache

import (
	"crypto/rand"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/fields"
	"golang.org/x/sync/singleflight"
)

// Options configures a Cache. They map one to one to Dovecot's auth_cache_*
// settings (docs/protocol.md §5.1, §5.9) and authd's auth_cache_password_fingerprint.
type Options struct {
	// MaxBytes is auth_cache_size, the budget for the entries' accounted
	// sizes. 0 (or less) turns the cache off: New returns nil.
	MaxBytes int64
	// TTL is auth_cache_ttl: how long a positive entry is fresh. 0 (or
	// less) turns the cache off, as in Dovecot.
	TTL time.Duration
	// NegativeTTL is auth_cache_negative_ttl: how long a negative ("user
	// unknown") entry is fresh. 0 means negative entries are not stored.
	NegativeTTL time.Duration
	// Fingerprint keeps an HMAC-SHA-256, under a random per-process key, of
	// the last password that verified against each positive entry.
	Fingerprint bool
	// Now is the clock, for tests; nil means time.Now. Only differences
	// between its readings are used, so time.Now's monotonic reading makes
	// the TTLs immune to wall-clock steps.
	Now func() time.Time
}

// Entry is what one passdb or userdb lookup answered. An Entry handed out
// by Lookup or Do is shared and read-only: its Fields must be cloned
// before they are changed.
type Entry struct {
	// Negative means "user unknown". A negative entry carries nothing
	// else: Store clears the other fields.
	Negative bool
	// HasPassword is false when the passdb returned no password at all
	// (nopassword, noauthenticate, userdb entries).
	HasPassword bool
	// Scheme and Data are the stored password, as backends.PassEntry has
	// them. Changing either is what counts as a password change.
	Scheme, Data string
	// Fields are the passdb extra fields or the userdb fields, in the order
	// the backend produced them.
	Fields fields.Fields
	// Refusal is non-zero for an answer that must never be stored: the
	// backend's refusal of an existing account (disabled, expired, no
	// credentials to give), which it may lift at any moment. Do hands it
	// to every waiting caller and stores nothing; Get never replaces it
	// with an expired entry. The value is the caller's: the cache does not
	// interpret it.
	Refusal uint8
}

// Accounted size of an entry (see entrySize). The constants were fitted to
// TestMemoryPerEntry, which stores 1M realistic entries and compares
// runtime.MemStats.HeapAlloc with the accounted total. They are the real
// heap cost of what an entry allocates beyond the bytes of its strings:
//
//   - nodeCost: the node (144-byte size class), the map slot (16-byte key
//     header, 8-byte pointer, a control byte, at the swiss map's average
//     load of about 0.7: about 35 bytes) and the round-up of the one
//     allocation holding all of the entry's strings (about 8 bytes on
//     average).
//   - fieldCost: one fields.Field (two string headers), allocated with
//     its siblings in one exactly-sized array, plus that array's round-up.
const (
	nodeCost  = 192
	fieldCost = 36
)

// Sharding: the lock is per shard, so the hit path of two cores rarely
// meets. Each shard owns MaxBytes/shards of the budget; a shard of less
// than minShardBytes would evict too early when keys hash unevenly, so
// small caches get fewer shards (one under 2 MiB, which also makes the
// LRU order exact).
const (
	maxShards     = 16
	minShardBytes = 1 << 20
)

// Cache is the auth cache. It is safe for concurrent use. A nil *Cache is
// a disabled cache (see the package doc).
type Cache struct {
	shards []shard
	mask   uint64
	seed   maphash.Seed

	ttl, negTTL int64 // nanoseconds
	now         func() time.Time
	realClock   bool      // now is time.Now
	base        time.Time // clock origin; node times are offsets from it

	fingerprint bool
	fpKey       [32]byte
	macs        sync.Pool // *macer

	// flushGen counts flushes, so that Do does not store an answer that
	// was fetched before a flush which should have removed it.
	flushGen atomic.Uint64
	stale    atomic.Int64
	flight   singleflight.Group

	// sh is the second-level cache shared with other processes (nil:
	// none; shared.go).
	sh shared
}

// node is one cached entry. The embedded Entry never changes once the node
// is in the map, which is why Lookup can hand out a pointer to it without
// holding the lock; a Store that changes anything allocates a new node.
// Every other field is guarded by the shard's lock.
type node struct {
	Entry
	key         string
	prev, next  *node // LRU list: shard.root.next is the most recently used
	created     int64 // when stored, as an offset from Cache.base
	size        int32 // accounted bytes
	lastSuccess bool  // the last password check against this entry succeeded
	hasFP       bool
	fp          [32]byte // HMAC of the last password that verified
	// mark is the shared store's generation of the entry's user when the
	// entry was fetched; zero when unknown (shared.go).
	mark mark
}

type shard struct {
	mu   sync.Mutex
	m    map[string]*node
	root node // sentinel of the circular LRU list
	max  int64

	// Counters are written under mu but read by Stats without it.
	hits, misses, negHits, evictions atomic.Int64
	entries, bytes                   atomic.Int64
	negEntries, negBytes             atomic.Int64

	_ [64]byte // keeps neighbouring shards' counters off one cache line
}

// New returns a cache configured by o, or nil when o turns the cache off
// (MaxBytes <= 0 or TTL <= 0). A nil *Cache is valid and disabled.
func New(o Options) *Cache {
	if o.MaxBytes <= 0 || o.TTL <= 0 {
		return nil
	}
	n := 1
	for n < maxShards && o.MaxBytes/int64(n*2) >= minShardBytes {
		n *= 2
	}
	return newSharded(o, n)
}

// newSharded builds a cache with n shards (a power of two); tests use it
// to pin the shard count.
func newSharded(o Options, n int) *Cache {
	c := &Cache{
		shards:      make([]shard, n),
		mask:        uint64(n - 1),
		seed:        maphash.MakeSeed(),
		ttl:         int64(o.TTL),
		negTTL:      max(int64(o.NegativeTTL), 0),
		now:         o.Now,
		fingerprint: o.Fingerprint,
	}
	if c.now == nil {
		c.now, c.realClock = time.Now, true
	}
	c.base = c.now()
	if c.fingerprint {
		// Per-process: a fingerprint is useless outside this process and
		// cannot be checked offline against a password list.
		rand.Read(c.fpKey[:])
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.m = make(map[string]*node)
		s.root.next, s.root.prev = &s.root, &s.root
		s.max = o.MaxBytes / int64(n)
	}
	return c
}

// clock returns the time since base. With the real clock it uses
// time.Since, which reads only the monotonic clock: half the cost of
// time.Now, and this is on every Lookup.
func (c *Cache) clock() int64 {
	if c.realClock {
		return int64(time.Since(c.base))
	}
	return int64(c.now().Sub(c.base))
}

func (c *Cache) shardOf(key string) *shard {
	if c.mask == 0 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)&c.mask]
}

// fresh tells whether n is still within its TTL at time now. An entry is
// fresh while less than its TTL has passed since it was stored.
func (c *Cache) fresh(n *node, now int64) bool {
	ttl := c.ttl
	if n.Negative {
		ttl = c.negTTL
	}
	return now-n.created < ttl
}

// Lookup returns the entry stored under key. found && fresh: use it.
// found && !fresh: the entry has expired; ask the backend, and use this
// entry only if the backend fails (Get does all of this). !found: ask the
// backend. The returned Entry is shared and must not be modified.
//
// Only fresh hits move the entry to the front of the LRU list, as in
// Dovecot: an expired entry is a fallback, not a sign of use. Expired
// lookups count as misses.
func (c *Cache) Lookup(key string) (e *Entry, fresh bool, found bool) {
	if c == nil {
		return nil, false, false
	}
	return c.lookup(key, true)
}

// lookup is Lookup; without use, the lookup is not a use of the entry: it
// is neither counted nor moves the entry in the LRU list (a caller that
// goes to the backend anyway and only wants the fallback).
func (c *Cache) lookup(key string, use bool) (e *Entry, fresh bool, found bool) {
	now := c.clock()
	s := c.shardOf(key)
	s.mu.Lock()
	n := s.m[key]
	if n == nil {
		if use {
			s.misses.Add(1)
		}
		s.mu.Unlock()
		return nil, false, false
	}
	fresh = c.fresh(n, now)
	if !use {
		s.mu.Unlock()
		return &n.Entry, fresh, true
	}
	if fresh {
		s.toFront(n)
		s.hits.Add(1)
		if n.Negative {
			s.negHits.Add(1)
		}
	} else {
		s.misses.Add(1)
	}
	s.mu.Unlock()
	return &n.Entry, fresh, true
}

// Store saves e under key, replacing what was there, and evicts least
// recently used entries until the shard is within its budget.
//
// Call it only with an answer the backend actually gave (found or not
// found), never for a temporary failure. Store copies e, so the caller
// keeps ownership of e.Fields.
//
// A negative e is not stored when Options.NegativeTTL is 0, but it still
// removes an older entry for key: a user who has since been deleted must
// not be served from an expired positive entry during a later outage. An
// entry too large for the budget is likewise not stored and removes the
// old one.
//
// If the stored entry has the same Scheme and Data (the password did not
// change), its fingerprint and last-check result carry over; otherwise
// they are dropped. Storing an entry equal to the cached one just renews
// it, without allocating, so several callers storing one shared answer
// cost little.
func (c *Cache) Store(key string, e Entry) {
	if c == nil || e.Refusal != 0 {
		return
	}
	c.store(key, &e, storeOpts{})
}

// storeOpts qualify a store.
type storeOpts struct {
	// flushGen, with checkGen: store only if no flush has started since
	// the cache's flushGen was this.
	flushGen uint64
	checkGen bool
	// mark is the shared generation the entry was fetched under (zero:
	// none).
	mark mark
	// age is how old the entry already is (one loaded from the shared
	// store): its TTL runs from when it was first fetched.
	age int64
}

// store implements Store.
func (c *Cache) store(key string, e *Entry, o storeOpts) {
	gen, checkGen := o.flushGen, o.checkGen
	if e.Negative {
		*e = Entry{Negative: true}
	}
	s := c.shardOf(key)
	size := entrySize(key, e)
	if (e.Negative && c.negTTL == 0) || size > s.max || size > math.MaxInt32 {
		s.mu.Lock()
		if n := s.m[key]; n != nil && (!checkGen || c.flushGen.Load() == gen) {
			s.remove(n)
		}
		s.mu.Unlock()
		return
	}
	now := c.clock() - max(o.age, 0)

	s.mu.Lock()
	if checkGen && c.flushGen.Load() != gen {
		s.mu.Unlock()
		return
	}
	old := s.m[key]
	if old != nil && int64(old.size) == size && sameEntry(&old.Entry, e) {
		old.created, old.mark = now, o.mark
		s.toFront(old)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()

	// Copy outside the lock: the allocation and copying are the
	// expensive part of a Store.
	n := newNode(key, e, size)
	n.created, n.mark = now, o.mark

	s.mu.Lock()
	if checkGen && c.flushGen.Load() != gen {
		s.mu.Unlock()
		return
	}
	if old := s.m[key]; old != nil {
		if samePassword(&old.Entry, &n.Entry) {
			n.lastSuccess, n.hasFP, n.fp = old.lastSuccess, old.hasFP, old.fp
		}
		s.remove(old)
	}
	s.insert(n)
	for s.bytes.Load() > s.max {
		// The new node is at the front and fits on its own, so the loop
		// stops before reaching it.
		s.remove(s.root.prev)
		s.evictions.Add(1)
	}
	s.mu.Unlock()
}

// entrySize is the accounted size of e stored under key (see nodeCost).
func entrySize(key string, e *Entry) int64 {
	n := int64(len(key)+len(e.Scheme)+len(e.Data)) + nodeCost
	for _, f := range e.Fields {
		n += int64(len(f.Key)+len(f.Value)) + fieldCost
	}
	return n
}

// newNode copies key and e into a node whose strings all live in one
// allocation: three allocations per entry (node, strings, fields array)
// whatever the number of fields, and no reference kept to the caller's
// memory, so the accounted size is what the entry really pins.
func newNode(key string, e *Entry, size int64) *node {
	total := len(key) + len(e.Scheme) + len(e.Data)
	for _, f := range e.Fields {
		total += len(f.Key) + len(f.Value)
	}
	var b strings.Builder
	b.Grow(total)
	b.WriteString(key)
	b.WriteString(e.Scheme)
	b.WriteString(e.Data)
	for _, f := range e.Fields {
		b.WriteString(f.Key)
		b.WriteString(f.Value)
	}
	blob := b.String()
	off := 0
	take := func(l int) string {
		s := blob[off : off+l]
		off += l
		return s
	}
	n := &node{size: int32(size)}
	n.key = take(len(key))
	n.Negative = e.Negative
	n.HasPassword = e.HasPassword
	n.Scheme = take(len(e.Scheme))
	n.Data = take(len(e.Data))
	if len(e.Fields) > 0 {
		n.Fields = make(fields.Fields, len(e.Fields))
		for i, f := range e.Fields {
			n.Fields[i].Key = take(len(f.Key))
			n.Fields[i].Value = take(len(f.Value))
		}
	}
	return n
}

func samePassword(a, b *Entry) bool {
	return a.Negative == b.Negative && a.HasPassword == b.HasPassword &&
		a.Scheme == b.Scheme && a.Data == b.Data
}

func sameEntry(a, b *Entry) bool {
	if !samePassword(a, b) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if a.Fields[i] != b.Fields[i] {
			return false
		}
	}
	return true
}

// The list and the counters; the caller holds s.mu.

func (s *shard) toFront(n *node) {
	if s.root.next == n {
		return
	}
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = &s.root, s.root.next
	s.root.next.prev = n
	s.root.next = n
}

func (s *shard) insert(n *node) {
	s.m[n.key] = n
	n.prev, n.next = &s.root, s.root.next
	s.root.next.prev = n
	s.root.next = n
	s.account(n, 1)
}

func (s *shard) remove(n *node) {
	delete(s.m, n.key)
	n.prev.next, n.next.prev = n.next, n.prev
	// The node may still be referenced through a Lookup's *Entry; cut its
	// list links so it does not keep its neighbours alive.
	n.prev, n.next = nil, nil
	s.account(n, -1)
}

func (s *shard) account(n *node, sign int64) {
	s.entries.Add(sign)
	s.bytes.Add(sign * int64(n.size))
	if n.Negative {
		s.negEntries.Add(sign)
		s.negBytes.Add(sign * int64(n.size))
	}
}

// Stats are the cache's counters, for the metrics layer and CACHE-STATUS.
// Hits+Misses is the number of Lookups on an enabled cache.
type Stats struct {
	Hits         int64 // Lookups that found a fresh entry, positive or negative
	Misses       int64 // Lookups that found nothing or only an expired entry
	NegativeHits int64 // the part of Hits that found a negative entry
	StaleHits    int64 // expired entries served because the backend failed
	Evictions    int64 // entries removed to stay within MaxBytes
	Entries      int64 // entries now cached (fresh and expired)
	Bytes        int64 // their accounted size, <= MaxBytes

	NegativeEntries int64 // the negative part of Entries
	NegativeBytes   int64 // the negative part of Bytes
	MaxBytes        int64 // the budget (sum of the shards' budgets)
}

// Stats returns the current counters. Each counter is read atomically;
// together they are a near-instant snapshot, not a consistent one.
func (c *Cache) Stats() Stats {
	var st Stats
	if c == nil {
		return st
	}
	for i := range c.shards {
		s := &c.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.NegativeHits += s.negHits.Load()
		st.Evictions += s.evictions.Load()
		st.Entries += s.entries.Load()
		st.Bytes += s.bytes.Load()
		st.NegativeEntries += s.negEntries.Load()
		st.NegativeBytes += s.negBytes.Load()
		st.MaxBytes += s.max
	}
	st.StaleHits = c.stale.Load()
	return st
}

// noteStale counts one expired entry served because the backend could not
// answer.
func (c *Cache) noteStale() {
	if c != nil {
		c.stale.Add(1)
	}
}
