package load

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds that keep every run finite and the machine usable, whatever the
// flags say.
const (
	MaxConns        = 4096
	MaxDepth        = 4096
	MaxDuration     = time.Hour
	MaxWarmup       = 10 * time.Minute
	MaxTimeout      = 10 * time.Minute
	DefaultConns    = 8
	DefaultDepth    = 8
	DefaultTimeout  = 10 * time.Second
	DefaultService  = "imap"
	DefaultWarmAll  = 10 * time.Minute
	maxErrorSamples = 5
	// MaxUserAddrs is how many users can have addresses of their own
	// (UserAddr: 10.0.0.1 to 10.255.255.254).
	MaxUserAddrs = 1<<24 - 2
)

// Config describes one run: Conns connections, each keeping Depth requests
// in flight, for Warmup (not counted) and then Duration (measured).
type Config struct {
	Target Target
	// Protocols are the protocols this run may use (Builtin, plus grpc
	// when the caller links it in); required.
	Protocols Registry
	// Protocol is a key of Protocols: "client" (the default: AUTH on an
	// auth-client or login socket), "master" (USER on auth-userdb or
	// auth-master), "grpc" (Authenticate, package grpcload).
	Protocol string
	// Mech is the SASL mechanism for the client protocol: PLAIN (the
	// default), LOGIN, SCRAM-SHA-1 or SCRAM-SHA-256.
	Mech     string
	Conns    int
	Depth    int
	Duration time.Duration
	Warmup   time.Duration
	// MaxRequests, when positive, stops issuing requests after that many
	// (the timed warm-up included, the WarmAll pass not), even before
	// Duration has passed.
	MaxRequests int64
	Users       *Users
	// WrongShare is the fraction of requests (0..1) sent with a wrong
	// password (client protocol) or for an unknown user (master protocol).
	WrongShare float64
	// NoPenalty adds no-penalty to every AUTH, so Dovecot skips its per-IP
	// penalty and the anvil round trip (docs/testing.md §4.3).
	NoPenalty bool
	// RemoteIP, when set, is sent as rip= (the client address a login
	// process would pass on).
	RemoteIP string
	// UserAddrs gives every user an address of its own (UserAddr), sent
	// as rip= with its requests: users logging in from many addresses, as
	// a login process serving many clients passes them on. authd's
	// brute-force defence then counts each apart, as in production. It
	// excludes RemoteIP.
	UserAddrs bool
	// Service is the service= value; default "imap".
	Service string
	// Timeout bounds connecting, the handshake, and how long requests may
	// still take after the measured window before they are given up as
	// unanswered. Default 10 s.
	Timeout time.Duration
	// WarmAll authenticates every user once, with the right password,
	// before the warm-up: it fills an auth cache. It stops after
	// WarmAllTimeout (default 10 min).
	WarmAll        bool
	WarmAllTimeout time.Duration
	// Seed makes the sequence of users and wrong passwords reproducible;
	// 0 picks a random seed.
	Seed uint64
	// TLS, if set, is the client TLS configuration for protocols that
	// use it (gRPC); nil means plaintext, which authd allows on loopback
	// and unix sockets.
	TLS *tls.Config
	// Rate, when positive, makes the run open-loop: Rate requests per
	// second in all, on a fixed schedule spread over the connections,
	// each latency counted from the request's scheduled send time
	// (openloop.go). Depth then only bounds the requests in flight per
	// connection; a request due on a connection that has Depth in flight
	// is not sent and counted as Unsent. Zero: closed loop, Depth in
	// flight per connection at all times. The line protocols only.
	Rate float64
	// OnWindow, if set, is called once, just before the timed warm-up
	// starts, with the measured window's bounds, so a caller can sample
	// the server's CPU time or attach a profiler exactly over the window.
	// It must not block.
	OnWindow func(start, end time.Time)
}

// Outcome is how one request ended.
type Outcome uint8

// The outcomes. Fail is a definite "no" (wrong password, unknown user);
// TempFail is the server saying it could not tell (code=temp_fail on the
// client protocol, FAIL on the master protocol); Error is a protocol or
// connection error; Unanswered is a request still open at the deadline.
const (
	OutcomeOK Outcome = iota
	OutcomeFail
	OutcomeTempFail
	OutcomeError
	OutcomeUnanswered
	numOutcomes
)

// Request is one authentication (or lookup) to perform.
type Request struct {
	User, Password string
	// Wrong is set when the request is meant to fail: a wrong password,
	// or an unknown user for lookups.
	Wrong bool
	// RIP, when set, is this request's rip= (Config.UserAddrs, an
	// attacker's address); otherwise the connection's Config.RemoteIP
	// applies.
	RIP string
}

// Protocol opens connections of one kind. A Registry names the protocols
// a run may use; adding one (gRPC Authenticate, in package grpcload) means
// a type that satisfies this and Conn, and an entry in the caller's
// Registry.
type Protocol interface {
	// Dial connects to cfg.Target and completes the protocol's handshake.
	Dial(ctx context.Context, cfg *Config) (Conn, error)
}

// Conn is one connection that runs requests.
type Conn interface {
	// Run issues requests from w.Next until it says there are no more,
	// keeping at most depth in flight, and reports each one's outcome to
	// w.Done. It returns when nothing is in flight, or at deadline (the
	// requests still open are reported as OutcomeUnanswered), or on a
	// connection error (those in flight are reported as OutcomeError and
	// the error returned). Run is called from one goroutine at a time.
	Run(depth int, deadline time.Time, w *Worker) error
	Close() error
}

// Registry maps protocol names (Config.Protocol, the command's -proto) to
// their drivers. It is a value the caller builds — Builtin, plus whatever
// the caller links in — and hands to Run in Config.Protocols: no protocol
// is registered in package state, so runs and tests cannot see each
// other's choices.
type Registry map[string]Protocol

// Builtin returns a new Registry with the protocols this package drives
// itself: "client" and "master" (docs/protocol.md §1 and §2). It needs
// only the standard library; "grpc" comes from package grpcload.
func Builtin() Registry {
	return Registry{"client": newClientProtocol(), "master": masterProtocol{}}
}

// names lists r's protocols, sorted, for messages.
func (r Registry) names() string {
	var n []string
	for k := range r {
		n = append(n, k)
	}
	slices.Sort(n)
	return strings.Join(n, ", ")
}

// clientMech reports whether the client protocol can drive mechanism m.
func clientMech(m string) bool {
	switch m {
	case "PLAIN", "LOGIN", "SCRAM-SHA-1", "SCRAM-SHA-256":
		return true
	}
	return false
}

// normalize fills defaults and checks bounds.
func (c *Config) normalize() error {
	if c.Target.Network == "" {
		return errors.New("no target")
	}
	if c.Target.Network != "unix" {
		// ParseTarget enforces this for parsed targets; a Target built by
		// hand gets the same check.
		t, err := ParseTarget(c.Target.Address)
		if err != nil {
			return err
		}
		c.Target = t
	}
	if c.Protocol == "" {
		c.Protocol = "client"
	}
	if len(c.Protocols) == 0 {
		return errors.New("no protocols: set Config.Protocols (load.Builtin())")
	}
	if _, ok := c.Protocols[c.Protocol]; !ok {
		return fmt.Errorf("unknown protocol %q (this build has: %s)", c.Protocol, c.Protocols.names())
	}
	c.Mech = strings.ToUpper(c.Mech)
	if c.Mech == "" {
		c.Mech = "PLAIN"
	}
	if c.Protocol == "client" && !clientMech(c.Mech) {
		return fmt.Errorf("unsupported mechanism %q (PLAIN, LOGIN, SCRAM-SHA-1, SCRAM-SHA-256)", c.Mech)
	}
	if c.Conns == 0 {
		c.Conns = DefaultConns
	}
	if c.Depth == 0 {
		c.Depth = DefaultDepth
	}
	if c.Conns < 1 || c.Conns > MaxConns {
		return fmt.Errorf("connections %d: want 1..%d", c.Conns, MaxConns)
	}
	if c.Depth < 1 || c.Depth > MaxDepth {
		return fmt.Errorf("in-flight depth %d: want 1..%d", c.Depth, MaxDepth)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return fmt.Errorf("duration %v: want more than 0 and at most %v (every run must end by itself)", c.Duration, MaxDuration)
	}
	if c.Warmup < 0 || c.Warmup > MaxWarmup {
		return fmt.Errorf("warm-up %v: want 0..%v", c.Warmup, MaxWarmup)
	}
	if !(c.Rate >= 0 && c.Rate <= MaxRate) {
		return fmt.Errorf("rate %v: want 0 (closed loop) up to %v requests/s", c.Rate, float64(MaxRate))
	}
	if c.MaxRequests < 0 {
		return fmt.Errorf("negative request limit %d", c.MaxRequests)
	}
	if c.Users == nil || c.Users.Len() == 0 {
		return errors.New("no users")
	}
	if !(c.WrongShare >= 0 && c.WrongShare <= 1) {
		return fmt.Errorf("wrong-password share %v: want 0..1", c.WrongShare)
	}
	if c.RemoteIP != "" {
		if _, err := netip.ParseAddr(c.RemoteIP); err != nil {
			return fmt.Errorf("rip %q: not an IP address", c.RemoteIP)
		}
		if c.UserAddrs {
			return errors.New("a fixed rip and an address per user exclude each other")
		}
	}
	if c.UserAddrs && c.Users.Len() > MaxUserAddrs {
		return fmt.Errorf("%d users: at most %d have addresses of their own", c.Users.Len(), MaxUserAddrs)
	}
	if c.Service == "" {
		c.Service = DefaultService
	}
	if strings.ContainsAny(c.Service, "\t\r\n\x00\x01") {
		return errors.New("service contains a control character")
	}
	for _, n := range c.Users.Names {
		if n == "" || strings.ContainsAny(n, "\t\r\n\x00") {
			return fmt.Errorf("user name %q is empty or contains TAB, CR, LF or NUL", n)
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout < 0 || c.Timeout > MaxTimeout {
		return fmt.Errorf("timeout %v: want more than 0 and at most %v", c.Timeout, MaxTimeout)
	}
	if c.WarmAllTimeout == 0 {
		c.WarmAllTimeout = DefaultWarmAll
	}
	if c.WarmAllTimeout < 0 || c.WarmAllTimeout > MaxDuration {
		return fmt.Errorf("warm-all timeout %v: want more than 0 and at most %v", c.WarmAllTimeout, MaxDuration)
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	return nil
}

// Counts are request outcomes.
type Counts struct {
	OK         int64 `json:"ok"`
	Fail       int64 `json:"fail"`
	TempFail   int64 `json:"tempfail"`
	Errors     int64 `json:"errors"`
	Unanswered int64 `json:"unanswered,omitempty"`
}

// Total is the number of requests counted.
func (c Counts) Total() int64 { return c.OK + c.Fail + c.TempFail + c.Errors + c.Unanswered }

func (c *Counts) add(o Outcome) {
	switch o {
	case OutcomeOK:
		c.OK++
	case OutcomeFail:
		c.Fail++
	case OutcomeTempFail:
		c.TempFail++
	case OutcomeError:
		c.Errors++
	case OutcomeUnanswered:
		c.Unanswered++
	}
}

func (c *Counts) merge(o Counts) {
	c.OK += o.OK
	c.Fail += o.Fail
	c.TempFail += o.TempFail
	c.Errors += o.Errors
	c.Unanswered += o.Unanswered
}

// phase is the shared clock and budget of one pass over the connections.
type phase struct {
	t0, t1  time.Time // measured window; zero t1: no window (warm-all)
	issued  atomic.Int64
	max     int64         // 0: unbounded
	cursor  *atomic.Int64 // warm-all: next user index, shared
	n       int           // number of users
	share   float64
	unknown bool // wrong requests name an unknown user (lookups)
	// byUser[i] is user i's rip= (Config.UserAddrs); otherwise pool,
	// when set, holds addresses each request draws its rip= from (an
	// attack).
	byUser, pool []string
	// guesses: every wrong password is a new one, as an attacker's are;
	// otherwise a user's wrong password is always the same (a client
	// with a stale password), which authd's defence counts once.
	guesses bool
	// paced: an open-loop run, whose pacer ends the window; requests
	// belong to the window their scheduled time falls in.
	paced bool
}

// rip is the rip= of a request for user i.
func (ph *phase) rip(rng *rand.Rand, i int) string {
	switch {
	case ph.byUser != nil:
		return ph.byUser[i]
	case len(ph.pool) > 0:
		return ph.pool[rng.IntN(len(ph.pool))]
	}
	return ""
}

// Worker is the per-connection request source and outcome sink. It is used
// by one goroutine at a time.
type Worker struct {
	users *Users
	ph    *phase
	rng   *rand.Rand

	// Counts by when the request completed: before, inside and after the
	// measured window.
	warm, measured, late Counts
	hist                 Histogram
	wrongSent            int64 // wrong requests completed inside the window
	wrongOK, rightFail   int64 // unexpected outcomes: OK for a wrong one, Fail for a right one
	lastEnd              time.Time
	errs                 []string
	// Open loop: how late the pacer wrote each request of the window,
	// and how many it did not send because the connection had Depth in
	// flight.
	lag    Histogram
	unsent int64
}

// Next returns the next request to issue, or false when the run is over
// for this worker (the window has ended, the request budget is spent, or
// warm-all has covered every user).
func (w *Worker) Next() (Request, bool) {
	ph := w.ph
	if ph.cursor != nil {
		i := ph.cursor.Add(1) - 1
		if i >= int64(ph.n) {
			return Request{}, false
		}
		return Request{User: w.users.Names[i], Password: w.users.Passwords[i], RIP: ph.rip(w.rng, int(i))}, true
	}
	if !ph.paced && !ph.t1.IsZero() && !time.Now().Before(ph.t1) {
		return Request{}, false
	}
	if ph.max > 0 && ph.issued.Add(1) > ph.max {
		return Request{}, false
	}
	i := w.rng.IntN(ph.n)
	r := Request{User: w.users.Names[i], Password: w.users.Passwords[i], RIP: ph.rip(w.rng, i)}
	if ph.share > 0 && w.rng.Float64() < ph.share {
		r.Wrong = true
		switch {
		case ph.unknown:
			r.User = unknownUser(r.User)
		case ph.guesses:
			r.Password = wrongPassword(r.Password) + strconv.FormatUint(w.rng.Uint64(), 36)
		default:
			r.Password = wrongPassword(r.Password)
		}
	}
	return r, true
}

// Done records the outcome of a request issued at start (open loop: its
// scheduled time).
func (w *Worker) Done(r Request, start time.Time, o Outcome) {
	end := time.Now()
	// Open loop: the request belongs where it was scheduled.
	at := end
	if w.ph.paced {
		at = start
	}
	switch {
	case o == OutcomeUnanswered:
		w.late.add(o)
	case at.Before(w.ph.t0):
		w.warm.add(o)
	case w.ph.t1.IsZero() || !at.After(w.ph.t1):
		w.measured.add(o)
		w.hist.Record(end.Sub(start))
		if r.Wrong {
			w.wrongSent++
		}
		switch {
		case o == OutcomeOK && r.Wrong:
			w.wrongOK++
		case o == OutcomeFail && !r.Wrong:
			w.rightFail++
		}
		if end.After(w.lastEnd) {
			w.lastEnd = end
		}
	default:
		w.late.add(o)
	}
}

// sent records how late the pacer wrote a request scheduled at sched.
func (w *Worker) sent(sched, at time.Time) {
	if w.inWindow(sched) {
		w.lag.Record(at.Sub(sched))
	}
}

// skip counts a request scheduled at sched that was not sent.
func (w *Worker) skip(sched time.Time) {
	if w.inWindow(sched) {
		w.unsent++
	}
}

func (w *Worker) inWindow(t time.Time) bool { return !t.Before(w.ph.t0) && !t.After(w.ph.t1) }

// Err notes a connection-level error for the report.
func (w *Worker) Err(err error) {
	if err != nil && len(w.errs) < maxErrorSamples {
		w.errs = append(w.errs, err.Error())
	}
}

// Result is the report of one run.
type Result struct {
	Target     string  `json:"target"`
	Protocol   string  `json:"protocol"`
	Mech       string  `json:"mech,omitempty"`
	Conns      int     `json:"conns"`
	Depth      int     `json:"depth"`
	Users      int     `json:"users"`
	WrongShare float64 `json:"wrong_share"`
	NoPenalty  bool    `json:"no_penalty"`
	Seed       uint64  `json:"seed"`

	// WarmAll is the cache-filling pass (all users once), when asked for.
	WarmAll *WarmAllResult `json:"warm_all,omitempty"`
	// Warmup counts requests that completed before the window.
	Warmup        Counts  `json:"warmup"`
	WarmupSeconds float64 `json:"warmup_seconds"`

	// Seconds is the measured window: Duration, or less when MaxRequests
	// ran out first.
	Seconds float64 `json:"seconds"`
	// Requests completed inside the window; Requests = OK + Fail +
	// TempFail + Errors.
	Requests int64 `json:"requests"`
	Counts
	// WrongSent of Requests were meant to fail; Unexpected did not end as
	// meant: WrongOK (OK for a wrong password) + RightFail (FAIL for a
	// right one, which is how a refusal of the brute-force defence shows).
	WrongSent  int64 `json:"wrong_sent"`
	Unexpected int64 `json:"unexpected"`
	WrongOK    int64 `json:"wrong_ok"`
	RightFail  int64 `json:"right_fail"`
	// Late requests completed after the window (not counted above);
	// Late.Unanswered never completed.
	Late Counts `json:"late"`

	RPS     float64 `json:"requests_per_sec"`
	Latency Latency `json:"latency_ms"`
	// Open loop only: the offered rate (Config.Rate), the requests of
	// the window not sent because their connection had Depth in flight,
	// and how late the generator wrote the others (already part of
	// Latency, which counts from the scheduled time).
	Rate    float64  `json:"offered_rate,omitempty"`
	Unsent  int64    `json:"unsent,omitempty"`
	SendLag *Latency `json:"send_lag_ms,omitempty"`
	// ErrorSamples are the first connection errors.
	ErrorSamples []string `json:"error_samples,omitempty"`

	hist, lag Histogram
}

// Histogram returns the latencies of the requests counted in the window.
func (r *Result) Histogram() *Histogram { return &r.hist }

// LagHistogram returns an open-loop run's send lags (SendLag).
func (r *Result) LagHistogram() *Histogram { return &r.lag }

// WarmAllResult reports the cache-filling pass.
type WarmAllResult struct {
	Counts
	Seconds float64 `json:"seconds"`
}

// Latency holds percentiles in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// LatencyOf summarizes h.
func LatencyOf(h *Histogram) Latency {
	return Latency{
		P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)), P99: ms(h.Percentile(99)),
		P999: ms(h.Percentile(99.9)), Max: ms(h.Max()), Mean: ms(h.Mean()),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Run runs the load described by cfg. It always returns within about
// WarmAllTimeout (when WarmAll) + Warmup + Duration + 2×Timeout; ctx
// cancellation ends it sooner (connections are closed and the partial
// result is discarded).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	// Connect everything first, so connection set-up is never measured.
	conns, err := dialAll(ctx, &cfg)
	defer closeAll(conns)
	if err != nil {
		return nil, err
	}
	// ctx cancellation closes the connections, which unblocks every Run.
	stop := context.AfterFunc(ctx, func() { closeAll(conns) })
	defer stop()

	res := newResult(&cfg)
	addrs := cfg.userAddrs()
	if cfg.WarmAll {
		res.WarmAll = warmAll(conns, &cfg, addrs, res)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	start := time.Now()
	ph := newPhase(&cfg, start, addrs, nil)
	if cfg.OnWindow != nil {
		cfg.OnWindow(ph.t0, ph.t1)
	}
	var ws []*Worker
	if cfg.Rate > 0 {
		ph.paced = true
		if ws, err = runPaced(ctx, conns, &cfg, ph, start); err != nil {
			return nil, err
		}
	} else {
		ws = runPhase(conns, &cfg, ph, ph.t1.Add(cfg.Timeout))
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	res.collect(ws, ph, &cfg)
	return res, nil
}

// newResult is the report of a run of cfg, before any request.
func newResult(cfg *Config) *Result {
	res := &Result{
		Target: cfg.Target.String(), Protocol: cfg.Protocol, Conns: cfg.Conns, Depth: cfg.Depth,
		Users: cfg.Users.Len(), WrongShare: cfg.WrongShare, NoPenalty: cfg.NoPenalty, Seed: cfg.Seed,
		Rate: cfg.Rate,
	}
	if cfg.Protocol == "client" {
		res.Mech = cfg.Mech
	}
	return res
}

// newPhase is the measured phase of cfg: Warmup from start, then
// Duration. byUser and pool give requests their rip= (see phase).
func newPhase(cfg *Config, start time.Time, byUser, pool []string) *phase {
	ph := &phase{
		t0: start.Add(cfg.Warmup), max: cfg.MaxRequests, n: cfg.Users.Len(),
		share: cfg.WrongShare, unknown: cfg.Protocol == "master", byUser: byUser, pool: pool,
	}
	ph.t1 = ph.t0.Add(cfg.Duration)
	return ph
}

// userAddrs lists every user's address (UserAddr) when cfg.UserAddrs is
// set; nil otherwise.
func (c *Config) userAddrs() []string {
	if !c.UserAddrs {
		return nil
	}
	a := make([]string, c.Users.Len())
	for i := range a {
		a[i] = UserAddr(i).String()
	}
	return a
}

// UserAddr is the address user i (from 0) logs in from with
// Config.UserAddrs: 10.0.0.1 onwards, 256 users per /24.
func UserAddr(i int) netip.Addr {
	n := uint32(i + 1)
	return netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
}

func closeAll(conns []Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// dialAll opens cfg.Conns connections at once, within cfg.Timeout. The
// slice it returns holds the ones that opened, for the caller to close,
// also on error.
func dialAll(ctx context.Context, cfg *Config) ([]Conn, error) {
	proto := cfg.Protocols[cfg.Protocol]
	conns := make([]Conn, cfg.Conns)
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var g sync.WaitGroup
	errs := make([]error, cfg.Conns)
	for i := range conns {
		g.Go(func() { conns[i], errs[i] = proto.Dial(dctx, cfg) })
	}
	g.Wait()
	// One message is enough: they are usually all the same.
	for _, e := range errs {
		if e != nil {
			return conns, fmt.Errorf("connecting to %s: %w", cfg.Target, e)
		}
	}
	return conns, nil
}

// warmAll authenticates every user once, with the right password (from
// its own address, with byUser).
func warmAll(conns []Conn, cfg *Config, byUser []string, res *Result) *WarmAllResult {
	start := time.Now()
	var cursor atomic.Int64
	ph := &phase{cursor: &cursor, n: cfg.Users.Len(), byUser: byUser}
	ws := runPhase(conns, cfg, ph, start.Add(cfg.WarmAllTimeout))
	wa := &WarmAllResult{Seconds: time.Since(start).Seconds()}
	for _, w := range ws {
		wa.Counts.merge(w.measured)
		wa.Counts.merge(w.late)
		res.ErrorSamples = appendErrs(res.ErrorSamples, w.errs)
	}
	return wa
}

// collect adds up the workers of the measured phase into r.
func (r *Result) collect(ws []*Worker, ph *phase, cfg *Config) {
	var lastEnd time.Time
	for _, w := range ws {
		r.lag.Merge(&w.lag)
		r.Unsent += w.unsent
		r.Warmup.merge(w.warm)
		r.Counts.merge(w.measured)
		r.Late.merge(w.late)
		r.WrongSent += w.wrongSent
		r.WrongOK += w.wrongOK
		r.RightFail += w.rightFail
		r.Unexpected += w.wrongOK + w.rightFail
		r.hist.Merge(&w.hist)
		r.ErrorSamples = appendErrs(r.ErrorSamples, w.errs)
		if w.lastEnd.After(lastEnd) {
			lastEnd = w.lastEnd
		}
	}
	r.Requests = r.Counts.OK + r.Counts.Fail + r.Counts.TempFail + r.Counts.Errors
	r.WarmupSeconds = cfg.Warmup.Seconds()
	// The window ends at t1, or earlier when the request budget ran out
	// and every worker stopped before it.
	end := ph.t1
	if lastEnd.Before(end) && cfg.MaxRequests > 0 && ph.issued.Load() >= cfg.MaxRequests {
		end = lastEnd
	}
	if d := end.Sub(ph.t0); d > 0 {
		r.Seconds = d.Seconds()
		r.RPS = float64(r.Requests) / r.Seconds
	}
	r.Latency = LatencyOf(&r.hist)
	if ph.paced {
		l := LatencyOf(&r.lag)
		r.SendLag = &l
	}
}

func appendErrs(dst, src []string) []string {
	for _, e := range src {
		if len(dst) >= maxErrorSamples {
			break
		}
		dst = append(dst, e)
	}
	return dst
}

// newWorkers makes one Worker per connection for phase ph.
func newWorkers(n int, cfg *Config, ph *phase) []*Worker {
	ws := make([]*Worker, n)
	for i := range ws {
		ws[i] = &Worker{users: cfg.Users, ph: ph, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
	}
	return ws
}

// runPhase runs every connection until ph says stop or deadline passes.
func runPhase(conns []Conn, cfg *Config, ph *phase, deadline time.Time) []*Worker {
	ws := newWorkers(len(conns), cfg, ph)
	var g sync.WaitGroup
	for i, c := range conns {
		w := ws[i]
		g.Go(func() {
			if err := c.Run(cfg.Depth, deadline, w); err != nil {
				w.Err(err)
			}
		})
	}
	g.Wait()
	return ws
}
