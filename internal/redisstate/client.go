// Package redisstate keeps the state several authd processes share in
// Redis or Valkey (docs/scale-out.md): the brute-force budgets
// (limiter.Shared), a second-level auth cache with per-user generations
// (cache.Shared), and the announcements between processes (cache
// flushes, refusals, resets) on two pub/sub channels.
//
// Redis is an optimisation, never a dependency: every call has a short
// deadline (Options.CallTimeout, 50 ms by default) and no retries, and
// the first call that fails opens a circuit breaker. While it is open
// every call returns ErrUnavailable at once, costing nothing, and the
// callers work alone: the limiter counts locally, the cache uses its own
// entries for a shorter time. A background probe closes the breaker when
// Redis answers again; then the flushes made meanwhile are delivered
// (the outbox), the give-backs held meanwhile are sent and the failures
// counted alone are replayed into the shared budgets. The local cache
// is checked entry by entry before each use, and emptied whenever the
// subscription is made again, since announcements may have been missed
// then. The connection is made lazily: authd starts while Redis is
// down.
package redisstate

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable is returned (wrapped) by every call while the breaker is
// open: Redis failed a call recently and has not answered a probe since.
var ErrUnavailable = errors.New("redis unavailable")

// Defaults of Options.
const (
	DefaultCallTimeout   = 50 * time.Millisecond
	DefaultProbeInterval = 200 * time.Millisecond
	DefaultKeyPrefix     = "authd:"
)

// Options configure a Client.
type Options struct {
	// Addrs: one address for a standalone server; several for a Redis
	// Cluster; with SentinelMaster, the sentinels' addresses.
	Addrs          []string
	SentinelMaster string
	// Username and Password authenticate to Redis (ACL user or
	// requirepass); SentinelPassword to the sentinels.
	Username, Password string
	SentinelPassword   string
	// TLS, when set, is the client's TLS configuration.
	TLS *tls.Config
	// KeyPrefix starts every key and channel name, so that several authd
	// clusters can share one Redis. Default "authd:".
	KeyPrefix string
	// CallTimeout bounds one call on the authentication path; flushes and
	// resets get four times as long.
	CallTimeout time.Duration
	// ProbeInterval is how often the breaker, while open, asks Redis
	// whether it answers again.
	ProbeInterval time.Duration
	// Secret, when set, is shared by every process: the cache's records
	// are encrypted with a key derived from it (so even a plaintext
	// stored password may be kept), and failed passwords are hashed under
	// a key derived from it (so a repeat is recognised on every process).
	Secret []byte
	// Log gets the breaker's transitions and the subscriber's troubles.
	Log *slog.Logger
}

// Cache is what the client tells the local cache (*cache.Cache).
type Cache interface {
	// Invalidated drops the entries of users, or all of them.
	Invalidated(users []string, all bool) int
}

// Limiter is what the client tells the local brute-force defence
// (*limiter.Limiter); see limiter.go for the types.
type Limiter interface {
	limiterEvents
	// Reconcile replays the failures counted while Redis was away.
	Reconcile(ctx context.Context) error
}

// Client is one process's connection to the shared state. Build it with
// New, attach the local cache and limiter, then Run it.
type Client struct {
	rdb      redis.UniversalClient
	o        Options
	cluster  bool
	sentinel bool
	origin   string // this process, in announcements

	down atomic.Bool
	wake chan struct{} // the breaker opened: the probe loop starts

	mu      sync.Mutex
	cache   Cache
	limiter Limiter

	stats  counters
	outbox outbox

	keys keys
	cd   codec

	// The authentication path's calls of concurrent logins go to Redis
	// together, one call for many (one script for many reservations, one
	// MGET for many generation checks, one script for many finishes): on
	// a busy host Redis and authd then pay one call's overhead per batch
	// instead of per login.
	reserveQ      chan reserveItem // the limiter's checks, run in batches
	mgetQ         chan mgetItem    // the cache's generation checks and reads
	finishQ       chan finishItem  // the limiter's finishes, sent in batches
	finishPending atomic.Int64     // queued or being sent
	held          heldGiveBacks    // give-backs not sent during an outage (giveback.go)
	seq           seqReads         // the flush sequence's shared reads (seq.go)
}

// quiet is go-redis's logger: its lines (a failed dial on every probe
// while Redis is down) would flood authd's log; the breaker logs each
// outage once instead.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// New builds a client; it does not connect (the first call does).
func New(o Options) (*Client, error) {
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: no address")
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultKeyPrefix
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = DefaultProbeInterval
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	c := &Client{o: o, origin: hex.EncodeToString(id[:]), wake: make(chan struct{}, 1), keys: keys{prefix: o.KeyPrefix}, cd: newCodec(o.Secret),
		reserveQ: make(chan reserveItem, 4096), mgetQ: make(chan mgetItem, 4096), finishQ: make(chan finishItem, 4096)}
	c.seq.kick = make(chan struct{}, 1)
	c.sentinel = o.SentinelMaster != ""
	c.cluster = !c.sentinel && len(o.Addrs) > 1
	c.rdb = redis.NewUniversalClient(c.universalOptions())
	return c, nil
}

// universalOptions are fail-fast: the context's deadline bounds socket
// I/O (ContextTimeoutEnabled; without it a hung server holds a call for
// ReadTimeout), nothing is retried (the breaker decides when to try
// again), and one dial attempt per call.
func (c *Client) universalOptions() *redis.UniversalOptions {
	o := c.o
	return &redis.UniversalOptions{
		Addrs:                 o.Addrs,
		MasterName:            o.SentinelMaster,
		Username:              o.Username,
		Password:              o.Password,
		SentinelPassword:      o.SentinelPassword,
		TLSConfig:             o.TLS,
		Protocol:              3,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		DialTimeout:           max(4*o.CallTimeout, 200*time.Millisecond),
		ReadTimeout:           max(2*o.CallTimeout, 100*time.Millisecond),
		WriteTimeout:          max(2*o.CallTimeout, 100*time.Millisecond),
		PoolTimeout:           o.CallTimeout,
		PoolSize:              32,
		MinIdleConns:          2,
		MaxRedirects:          3,
		DisableIdentity:       true,
		// Redis 7 and Valkey 8 do not know the maintenance handshake.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// Attach sets the local cache and limiter the client reports to; either
// may be nil. Call it before Run.
func (c *Client) Attach(ca Cache, l Limiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache, c.limiter = ca, l
}

func (c *Client) attached() (Cache, Limiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cache, c.limiter
}

// Close closes the connections. Run must have returned.
func (c *Client) Close() error { return c.rdb.Close() }

// Up reports whether the breaker is closed (calls go to Redis).
func (c *Client) Up() bool { return !c.down.Load() }

// call runs fn with the call deadline unless the breaker is open. A
// failure that is Redis's (no answer in time, a refused or broken
// connection) opens the breaker; a reply error (a script's) and the
// caller's own cancellation do not.
func (c *Client) call(ctx context.Context, op op, timeout time.Duration, fn func(ctx context.Context) error) error {
	if c.down.Load() {
		c.stats.skipped.get(op).Add(1)
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, errNotSent)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c.stats.calls.get(op).Add(1)
	err := fn(cctx)
	if err == nil {
		return nil
	}
	c.stats.errors.get(op).Add(1)
	var reply redis.Error
	if ctx.Err() == nil && !(errors.As(err, &reply) && !isConnError(err)) {
		c.trip(op, err)
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isConnError tells the reply errors that mean the server cannot serve
// now (loading, a cluster slot without a node, a replica that is not
// writable during a failover) or not us (a wrong or missing password:
// every call would fail, so the breaker opens and says so, and the probe
// keeps failing until the password is right) from a script's or a
// command's own. Redis answers a long command from a client that has not
// authenticated with a protocol error, and closes any connection it
// answers so.
func isConnError(err error) bool {
	s := err.Error()
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "READONLY", "MASTERDOWN", "TRYAGAIN", "NOREPLICAS", "NOAUTH", "WRONGPASS", "ERR Protocol error"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// trip opens the breaker.
func (c *Client) trip(op op, err error) {
	if !c.down.CompareAndSwap(false, true) {
		return
	}
	c.stats.opened.Add(1)
	c.o.Log.Warn("redis unreachable; working alone until it answers again", "op", string(op), "err", err)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run probes Redis while the breaker is open and listens to the other
// processes' announcements, until ctx ends.
func (c *Client) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { c.probeLoop(ctx) })
	wg.Go(func() { c.subscribe(ctx) })
	wg.Go(func() { c.seqLoop(ctx) })
	// Two of each: while one batch is in Redis, the next one gathers and
	// goes out, so that Redis does not sit idle while authd reads a
	// batch's answers.
	for range 2 {
		wg.Go(func() { c.finishLoop(ctx) })
		wg.Go(func() { c.reserveLoop(ctx) })
		wg.Go(func() { c.mgetLoop(ctx) })
	}
	wg.Wait()
}

// probeLoop closes the breaker once a PING succeeds, then reconciles.
func (c *Client) probeLoop(ctx context.Context) {
	t := time.NewTicker(c.o.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-t.C:
		}
		if !c.down.Load() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(c.o.CallTimeout, 50*time.Millisecond))
		err := c.rdb.Ping(pctx).Err()
		cancel()
		c.stats.probes.Add(1)
		if err != nil {
			continue
		}
		c.recovered(ctx)
	}
}

// recovered closes the breaker: the flushes made meanwhile go out first
// (so that no process trusts an entry they should have removed), then
// calls flow again, the give-backs held meanwhile are sent and the
// failures counted alone are replayed.
//
// The local cache is not emptied here. Every entry is checked against
// the store before each use while the breaker is closed (an entry of
// another generation, or one stored while the store could not be asked,
// is dropped then), and a subscription that broke empties it when it is
// made again (events.go), so no flush made elsewhere meanwhile can be
// missed. Emptying it at each recovery made an overloaded host worse:
// its calls time out, the breaker opens and closes several times a
// second, and each close sent every login to the shared store and the
// backend at once.
func (c *Client) recovered(ctx context.Context) {
	if err := c.deliverOutbox(ctx); err != nil {
		return // still failing: stay open, probe again
	}
	c.down.Store(false)
	c.stats.closed.Add(1)
	_, l := c.attached()
	c.o.Log.Info("redis answers again; sharing resumed")
	c.sendHeld(ctx)
	if l != nil {
		if err := l.Reconcile(ctx); err != nil {
			c.o.Log.Warn("redis: replaying the failures counted alone stopped", "err", err)
		}
	}
}
