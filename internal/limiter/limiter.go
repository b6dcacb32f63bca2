// Package limiter is authd's brute-force defence: failure budgets per
// remote address, per address prefix, per account and per (account,
// prefix) pair, over sliding windows, with known-good pairs that keep the
// owner of an attacked account logging in (docs/architecture.md §Brute
// force, docs/operations.md §7).
//
// An attempt is counted when it arrives (Begin), before any lookup or
// verification, and gives its reservation back when it succeeds or could
// not be decided (Done): parallel connections buy no more guesses than one.
// A key over budget refuses attempts before any work is done; the caller
// answers them exactly like a wrong password.
//
// The same wrong password repeated for one account from one network
// counts once: the pair remembers keyed hashes of its last failed
// passwords (32 bits of a hash under a random per-process seed; never the
// password). Temporary failures never count.
//
// Memory is bounded: at most Config.MaxKeys keys are tracked, the least
// recently used going first (of eight keys compared at a time; store.go).
package limiter

import (
	"context"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"
)

// Kind is the kind of a key.
type Kind uint8

// The key kinds.
const (
	// KindIP is one remote address: an IPv4 address, or an IPv6 /64 (one
	// host's or one customer's addresses).
	KindIP Kind = iota
	// KindPrefix is the network around it: IPv4 /24, IPv6 /48.
	KindPrefix
	// KindAccount is the account, after name processing.
	KindAccount
	// KindPair is an account seen from one network (the /24 or /48): it
	// remembers the last success (known-good) and the last failed
	// passwords, and has its own budget while known-good.
	KindPair
	numKinds
)

var kindNames = [numKinds]string{"ip", "prefix", "account", "pair"}

// String is the kind's name, also a metric label value.
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "invalid"
}

// Budget is a failure budget: once Failures failures are in the last
// Window, further attempts are refused until the window slides past them.
// Failures 0 turns the budget off.
type Budget struct {
	Failures int
	Window   time.Duration
}

// Config configures a Limiter. Zero fields take the defaults.
type Config struct {
	IP        Budget // default 20 failures in 10 minutes
	Prefix    Budget // default 100 in 10 minutes
	Account   Budget // default 100 in 24 hours, from networks not known-good for the account
	KnownGood Budget // a known-good pair's own budget, default 10 in 10 minutes
	// KnownGoodFor is how long a success keeps a pair known-good
	// (default 30 days).
	KnownGoodFor time.Duration
	// MaxKeys bounds the keys tracked (default 1,000,000).
	MaxKeys int
	// InFlightWait bounds how long an attempt of a known-good pair waits
	// when the pair's budget is full of attempts in flight (flying.go);
	// default 5 s, under the 10 s Postfix waits for an answer.
	InFlightWait time.Duration
	// Log gets one line when a key starts refusing and one when it stops.
	Log *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Defaults.
var (
	DefaultIP        = Budget{Failures: 20, Window: 10 * time.Minute}
	DefaultPrefix    = Budget{Failures: 100, Window: 10 * time.Minute}
	DefaultAccount   = Budget{Failures: 100, Window: 24 * time.Hour}
	DefaultKnownGood = Budget{Failures: 10, Window: 10 * time.Minute}
)

// More defaults.
const (
	DefaultKnownGoodFor = 30 * 24 * time.Hour
	DefaultMaxKeys      = 1_000_000
	DefaultInFlightWait = 5 * time.Second
)

const shards = 16

func (c Config) withDefaults() Config {
	def := func(b *Budget, d Budget) {
		if b.Failures == 0 && b.Window == 0 {
			*b = d
		}
		if b.Window <= 0 {
			b.Window = d.Window
		}
	}
	def(&c.IP, DefaultIP)
	def(&c.Prefix, DefaultPrefix)
	def(&c.Account, DefaultAccount)
	def(&c.KnownGood, DefaultKnownGood)
	if c.KnownGoodFor <= 0 {
		c.KnownGoodFor = DefaultKnownGoodFor
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.InFlightWait <= 0 {
		c.InFlightWait = DefaultInFlightWait
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Limiter tracks failures. It is safe for concurrent use.
type Limiter struct {
	cfg     Config
	budgets [numKinds]Budget
	// slotLen is each kind's window slot: its window over slots.
	slotLen [numKinds]time.Duration
	now     func() time.Time
	base    time.Time
	keys    *keyer
	// pwSeed keys the hash failed passwords are remembered by (see
	// passwordHash).
	pwSeed maphash.Seed
	shards [shards]shard
	tables tableArena
	sh     sharedState

	evicted atomic.Int64
	// waits and busy are Stats.Waits and Stats.Busy.
	waits, busy atomic.Int64
	refusals    [numKinds]atomic.Int64
	blocks      [numKinds]atomic.Int64
}

// New returns a limiter configured by cfg.
func New(cfg Config) *Limiter {
	cfg = cfg.withDefaults()
	l := &Limiter{cfg: cfg, now: cfg.Now, keys: newKeyer()}
	l.budgets = [numKinds]Budget{KindIP: cfg.IP, KindPrefix: cfg.Prefix, KindAccount: cfg.Account, KindPair: cfg.KnownGood}
	for k, b := range l.budgets {
		l.slotLen[k] = max(b.Window/slots, 1)
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.base = l.now()
	// Per process: a password's hash means nothing outside it.
	l.pwSeed = maphash.MakeSeed()
	per := (cfg.MaxKeys + shards - 1) / shards
	for i := range l.shards {
		l.shards[i].init(per, l.keys, &l.tables)
	}
	return l
}

// elapsed is the time since the limiter started.
func (l *Limiter) elapsed() time.Duration { return l.now().Sub(l.base) }

// elapsedAt is the time since the limiter started at t, read by the
// caller; with a zero t, or a clock of the configuration's, now.
func (l *Limiter) elapsedAt(t time.Time) time.Duration {
	if t.IsZero() || l.cfg.Now != nil {
		return l.elapsed()
	}
	// A request that arrived before the limiter was made (a reload) is
	// counted at its start: slots are never negative.
	return max(t.Sub(l.base), 0)
}

func (l *Limiter) shardOf(id keyID) *shard {
	return &l.shards[id.a%shards]
}

// slot is the window slot of kind k at time t.
func (l *Limiter) slot(k Kind, t time.Duration) int64 {
	return int64(t / l.slotLen[k])
}

// passwordHash is the hash a failed password is remembered by: 32 bits
// of a hash keyed with a random per-process seed. It never leaves the
// process and only tells a repeated password from a new one; 32 bits fit
// billions of passwords each, so even a memory dump would not give one
// back. A cryptographic MAC (HMAC-SHA-256, tried first) cost more than all
// the rest of an attempt for no gain here.
func (l *Limiter) passwordHash(password []byte) uint32 {
	return uint32(maphash.Bytes(l.pwSeed, password))
}

// Run releases keys whose failures have slid out of their window, logging
// each, until ctx ends. Keys are also released when an attempt finds them
// below budget; Run makes the "released" log line and the metric timely
// for keys nobody tries any more.
func (l *Limiter) Run(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.sweep()
		}
	}
}

// sweep releases every blocked key that is below its budget now.
func (l *Limiter) sweep() {
	now := l.elapsed()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for id := range s.blocked {
			e := &s.slots[s.index(id)]
			if e.win.sum(l.slot(e.kind, now)) < l.budgets[e.kind].Failures {
				l.release(s, e)
			}
		}
		s.mu.Unlock()
	}
}

// block marks e refusing; s.mu is held.
func (l *Limiter) block(s *shard, e *entry) {
	l.refusals[e.kind].Add(1)
	if e.blocked {
		return
	}
	e.blocked = true
	s.blocked[e.id] = struct{}{}
	l.blocks[e.kind].Add(1)
	l.cfg.Log.Warn("penalty: refusing attempts", "kind", e.kind.String(), "key", displayKey(s.keyText(e)),
		"failures", e.win.sum(l.slot(e.kind, l.elapsed())), "window", l.budgets[e.kind].Window.String())
}

// release marks e no longer refusing; s.mu is held.
func (l *Limiter) release(s *shard, e *entry) {
	if !e.blocked {
		return
	}
	e.blocked = false
	delete(s.blocked, e.id)
	l.cfg.Log.Info("penalty: no longer refusing", "kind", e.kind.String(), "key", displayKey(s.keyText(e)))
}

// normalize maps an IPv4-mapped IPv6 address to the IPv4 address.
func normalize(ip netip.Addr) netip.Addr {
	if ip.Is4In6() {
		return ip.Unmap()
	}
	return ip
}
