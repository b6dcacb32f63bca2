package cache

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/tabescape"
)

// Shared is a second-level cache kept outside the process and shared by
// several authd processes (internal/redisstate keeps it in Redis;
// docs/scale-out.md). Each process keeps its own Cache in front of it
// (the first level, L1).
//
// Every user has a generation in the shared store, which a flush on any
// process raises. An L1 entry remembers the generation it was fetched
// under and is used only while that is still the user's generation, so a
// flush anywhere takes effect here before the next use, even if its
// broadcast was lost. A record in the store counts only under the
// generation it was written with.
//
// Every method is bounded by the store's own deadline; an error means the
// store could not be asked, and the cache then works alone (with a
// shorter L1 lifetime, SharedOptions.DegradedTTL).
type Shared interface {
	// Generation is user's current generation, with the flush sequence
	// read no later than its counters.
	Generation(ctx context.Context, user string) (Gen, error)
	// FlushSeq is the store's flush sequence, which every flush raises
	// after the generations it raised: while it has not moved since an
	// entry's generation was read, no flush can have changed it. It is
	// read after the call starts (a read may answer every call waiting
	// for one). 0 means unknown.
	FlushSeq(ctx context.Context) (uint64, error)
	// Load returns the record stored for key under user's current
	// generation (found false when there is none or it belongs to an
	// older generation), and that generation.
	Load(ctx context.Context, user, key string) (rec Record, found bool, gen Gen, err error)
	// Save stores rec for key, unless user's generation is no longer
	// gen: an answer fetched before a flush must not outlive it. The
	// store may decline to keep a record (a plaintext password it could
	// not protect) without an error.
	Save(ctx context.Context, user, key string, gen Gen, rec Record) error
	// Invalidate raises the generation of users (as keys hold them:
	// tab-escaped), or of everyone when users is empty, and tells every
	// process sharing the store to drop their entries (Cache.Invalidated).
	Invalidate(ctx context.Context, users []string) error
}

// Gen is a user's generation: the store's epoch (raised by a flush of
// everything) and the user's own counter; Seq is the store's flush
// sequence as read with them (FlushSeq; 0 unknown), not a part of the
// generation.
type Gen struct{ Epoch, User, Seq uint64 }

// mark is what an L1 entry keeps of the generation it was fetched under:
// its tag (genTag; 0 none) and the flush sequence at which the tag was
// last found current (0 unknown).
type mark struct{ tag, seq uint64 }

func markOf(g Gen) mark { return mark{tag: genTag(g), seq: g.Seq} }

// Record is an entry as the shared store keeps it.
type Record struct {
	Entry Entry
	// Created is when the backend gave the answer (wall clock: other
	// processes read it).
	Created time.Time
	// TTL is how long the record is fresh: auth_cache_ttl, or
	// auth_cache_negative_ttl for a negative one.
	TTL time.Duration
}

// SharedOptions configure SetShared.
type SharedOptions struct {
	// DegradedTTL caps the age of an L1 entry used while the shared store
	// cannot be asked (its generation unchecked): flushes made elsewhere
	// cannot reach this process then. Default one minute.
	DegradedTTL time.Duration
}

// DefaultDegradedTTL is SharedOptions.DegradedTTL's default.
const DefaultDegradedTTL = time.Minute

// shared is the cache's side of a Shared store.
type shared struct {
	store       Shared
	degradedTTL int64 // nanoseconds

	hits, misses, drops, errs, invalidations atomic.Int64
}

// SetShared puts s behind the cache as its second level. Call it before
// the cache is used. A nil cache ignores it.
func (c *Cache) SetShared(s Shared, o SharedOptions) {
	if c == nil {
		return
	}
	if o.DegradedTTL <= 0 {
		o.DegradedTTL = DefaultDegradedTTL
	}
	c.sh.store, c.sh.degradedTTL = s, int64(o.DegradedTTL)
}

// SharedStats are the second level's counters (zero without one).
type SharedStats struct {
	Hits   int64 // L1 misses answered by the shared store
	Misses int64 // L1 misses the shared store could not answer either
	// Dropped counts L1 entries found flushed by another process (their
	// generation had moved) when about to be used.
	Dropped int64
	// Errors counts calls the shared store could not answer.
	Errors int64
	// Invalidations counts flushes other processes announced.
	Invalidations int64
}

// SharedStats returns the second level's counters.
func (c *Cache) SharedStats() SharedStats {
	if c == nil {
		return SharedStats{}
	}
	return SharedStats{Hits: c.sh.hits.Load(), Misses: c.sh.misses.Load(), Dropped: c.sh.drops.Load(),
		Errors: c.sh.errs.Load(), Invalidations: c.sh.invalidations.Load()}
}

// genTag folds a generation into the node's one word; never 0, which
// means "fetched under no known generation".
func genTag(g Gen) uint64 {
	t := mix64(g.Epoch ^ mix64(g.User+0x9e3779b97f4a7c15))
	if t == 0 {
		t = 1
	}
	return t
}

// mix64 is SplitMix64's finaliser: consecutive counters give unrelated
// words, so two generations collide with probability 2^-64.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// userOfKey is the user part of a key, as Flush matches it: the first
// value after the "P<n>\t" / "U<n>\t" prefix, tab-escaped.
func userOfKey(key string) (string, bool) {
	rest, ok := keyValues(key)
	if !ok {
		return "", false
	}
	if i := strings.IndexByte(rest, '\t'); i >= 0 {
		rest = rest[:i]
	}
	return rest, rest != ""
}

// peek reads the node under key without counting a use.
func (c *Cache) peek(key string) (e *Entry, created int64, m mark, fresh, found bool) {
	now := c.clock()
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[key]
	if n == nil {
		return nil, 0, mark{}, false, false
	}
	return &n.Entry, n.created, n.mark, c.fresh(n, now), true
}

// use counts a lookup of key as a hit (moving its entry to the front) or
// a miss.
func (c *Cache) use(key string, hit bool) {
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.m[key]
	if !hit || n == nil {
		s.misses.Add(1)
		return
	}
	s.toFront(n)
	s.hits.Add(1)
	if n.Negative {
		s.negHits.Add(1)
	}
}

// drop removes the entry under key if it is still e.
func (c *Cache) drop(key string, e *Entry) {
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[key]; n != nil && &n.Entry == e {
		s.remove(n)
	}
}

// l1State is what checking an L1 entry against the shared store found.
type l1State uint8

const (
	l1Usable  l1State = iota // use it
	l1Miss                   // nothing fresh to use
	l1Dropped                // flushed elsewhere: dropped, gen holds the new generation
)

// checkL1 decides whether a fresh L1 entry, marked m, may be used: the
// store's flush sequence has not moved since its generation was found
// current (one read shared by the logins waiting at that moment), or its
// generation is still the user's; or the store cannot be asked and the
// entry is younger than DegradedTTL. now is the mark an answer stored
// now gets (zero: unknown); g is the generation read, with l1Dropped.
func (c *Cache) checkL1(ctx context.Context, key, user string, e *Entry, created int64, m mark) (st l1State, now mark, g Gen) {
	if m.tag != 0 && m.seq != 0 {
		if s, err := c.sh.store.FlushSeq(ctx); err == nil && s == m.seq {
			return l1Usable, m, Gen{}
		}
	}
	g, err := c.sh.store.Generation(ctx, user)
	switch {
	case err != nil:
		c.sh.errs.Add(1)
		if c.clock()-created < c.sh.degradedTTL {
			return l1Usable, mark{}, Gen{}
		}
		return l1Miss, mark{}, Gen{}
	case m.tag != 0 && m.tag == genTag(g):
		c.confirm(key, e, g.Seq)
		return l1Usable, markOf(g), g
	}
	c.drop(key, e)
	c.sh.drops.Add(1)
	return l1Dropped, markOf(g), g
}

// confirm notes that the entry under key, if it is still e, was found
// current at flush sequence seq.
func (c *Cache) confirm(key string, e *Entry, seq uint64) {
	s := c.shardOf(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.m[key]; n != nil && &n.Entry == e {
		n.mark.seq = seq
	}
}

// getShared is Get with a second level: L1 checked against the user's
// generation, then the shared store, then the backend (whose answer goes
// to both levels under the generation read before it was asked).
func (c *Cache) getShared(ctx context.Context, key, user string, force bool, timeout time.Duration, fn func(ctx context.Context) (Entry, error)) (Answer, error) {
	e, created, m, fresh, found := c.peek(key)
	var gen Gen
	genKnown := false
	if found && fresh && !force {
		st, _, g := c.checkL1(ctx, key, user, e, created, m)
		switch st {
		case l1Usable:
			c.use(key, true)
			return Answer{Entry: e, Source: Fresh}, nil
		case l1Dropped:
			found, e, gen, genKnown = false, nil, g, true
		}
	}
	if !force {
		c.use(key, false)
	}
	var l2Stale *Entry
	if !force {
		rec, ok, g, err := c.sh.store.Load(ctx, user, key)
		switch {
		case err != nil:
			c.sh.errs.Add(1)
		case ok && c.recordFresh(&rec):
			c.sh.hits.Add(1)
			age := int64(max(time.Since(rec.Created), 0))
			c.store(key, &rec.Entry, storeOpts{mark: markOf(g), age: age})
			return Answer{Entry: &rec.Entry, Source: Fresh}, nil
		default:
			c.sh.misses.Add(1)
			gen, genKnown = g, true
			if ok {
				l2Stale = &rec.Entry
			}
		}
	} else if g, err := c.sh.store.Generation(ctx, user); err == nil {
		gen, genKnown = g, true
	} else {
		c.sh.errs.Add(1)
	}
	ans, err, _ := c.do(ctx, key, timeout, fn, &sharedSave{user: user, gen: gen, known: genKnown})
	switch {
	case err == nil:
		return Answer{Entry: &ans, Source: FromBackend}, nil
	case found:
		c.noteStale()
		return Answer{Entry: e, Source: Stale, BackendErr: err}, nil
	case l2Stale != nil:
		c.noteStale()
		return Answer{Entry: l2Stale, Source: Stale, BackendErr: err}, nil
	}
	return Answer{}, err
}

// recordFresh reports whether a shared record is within its TTL, and a
// kind this cache keeps (negative records only with a negative TTL).
func (c *Cache) recordFresh(r *Record) bool {
	if r.Entry.Refusal != 0 || (r.Entry.Negative && c.negTTL == 0) {
		return false
	}
	return time.Since(r.Created) < r.TTL
}

// sharedSave is what a backend answer fetched through the shared path is
// saved under.
type sharedSave struct {
	user  string
	gen   Gen
	known bool
}

// save writes a backend answer to the shared store (when the generation
// before the lookup is known: without it, the answer may predate a
// flush).
func (c *Cache) save(ctx context.Context, key string, sv *sharedSave, e *Entry) {
	if !sv.known || e.Refusal != 0 || (e.Negative && c.negTTL == 0) {
		return
	}
	ttl := time.Duration(c.ttl)
	if e.Negative {
		ttl = time.Duration(c.negTTL)
	}
	if err := c.sh.store.Save(ctx, sv.user, key, sv.gen, Record{Entry: *e, Created: time.Now(), TTL: ttl}); err != nil {
		c.sh.errs.Add(1)
	}
}

// FlushShared is Flush here and, through the shared store, in every
// process sharing it: users' generations are raised (everyone's when
// users is empty) and the flush announced. It returns what Flush removed
// here; an error says the store could not be reached (the store is
// expected to deliver the flush once it can, see redisstate's outbox).
func (c *Cache) FlushShared(ctx context.Context, users []string) (int, error) {
	n := c.Flush(users)
	if c == nil || c.sh.store == nil {
		return n, nil
	}
	escaped := make([]string, len(users))
	for i, u := range users {
		escaped[i] = tabescape.Escape(u)
	}
	return n, c.sh.store.Invalidate(ctx, escaped)
}

// Invalidated drops the L1 entries of users (tab-escaped, as keys hold
// them), or every entry when all: another process flushed them, or the
// announcements may have been missed. It returns how many went.
func (c *Cache) Invalidated(users []string, all bool) int {
	if c == nil {
		return 0
	}
	c.sh.invalidations.Add(1)
	if all {
		return c.Flush(nil)
	}
	if len(users) == 0 {
		return 0
	}
	return c.flushEscaped(users)
}
