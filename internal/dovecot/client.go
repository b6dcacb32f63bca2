package dovecot

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/ratelog"
	"github.com/authd-project/authd/internal/rawsock"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/tabescape"
	"github.com/authd-project/authd/internal/yield"
)

// Limits from docs/protocol.md §1.4 and §1.6.
const (
	clientMaxLine  = 16384
	requestTimeout = 150 * time.Second
)

// Shared is the state all listeners of one process share: the process id
// sent as SPID, the CUID counter, the login-connection registry the master
// socket's REQUEST consults, the failure-delay queue and counters.
type Shared struct {
	tokenKey [32]byte
	SPID     uint32
	cuid     atomic.Uint32
	Logins   *LoginRegistry
	Stats    Stats
	// delayed is the number of failure replies waiting in every client
	// listener's delay queue (bounded by Limits.MaxDelayed).
	delayed atomic.Int64
}

// Stats are counters the metrics layer reads.
type Stats struct {
	Panics      atomic.Int64
	Connections atomic.Int64
	// Refused counts connections closed at once because their listener
	// served its maximum.
	Refused atomic.Int64
	// Overdue counts requests answered with a temporary failure because
	// they outlived their deadline in the engine.
	Overdue atomic.Int64
	// DelayOverflow counts failures answered at once, without
	// auth_failure_delay, because Limits.MaxDelayed replies were
	// waiting already.
	DelayOverflow atomic.Int64
	// TooLarge counts master-socket replies not sent because the client
	// could not read a line that long (answered with FAIL instead).
	TooLarge atomic.Int64
}

// NewShared returns process-wide protocol state.
func NewShared(spid uint32) *Shared {
	s := &Shared{SPID: spid, Logins: NewLoginRegistry()}
	if _, err := rand.Read(s.tokenKey[:]); err != nil {
		panic("dovecot: no randomness for the auth token key: " + err.Error())
	}
	return s
}

// authToken is the auth_token a REQUEST with request_auth_token gets: a
// keyed hash of the session, as Dovecot's auth-token.c makes with its
// secret file. Ours lives only in memory: a token proves the session to
// this process, and a restart ends every session's need for it.
func (s *Shared) authToken(service string, sessionPID int64, user, session string) string {
	m := hmac.New(sha256.New, s.tokenKey[:])
	fmt.Fprintf(m, "%s\x00%d\x00%s\x00%s", service, sessionPID, user, session)
	return hex.EncodeToString(m.Sum(nil))[:40]
}

// ClientConfig configures a client-protocol listener.
type ClientConfig struct {
	Engine ClientEngine
	// Mechs are the enabled mechanisms in auth_mechanisms order.
	Mechs []sasl.Def
	// Login makes this a login socket: CPIDs must be unique and successful
	// requests wait for the master's REQUEST.
	Login bool
	// Trusted: the client's no-penalty parameter is honoured (login
	// sockets, and listeners the admin marks as trusted).
	Trusted bool
	// FailureDelay is auth_failure_delay (the engine applies it; the
	// queue's tick follows it). MaxFailureDelay bounds a failure's
	// delay, escalation included, after the request arrived: 8 s on a
	// client socket, under Postfix's 10 s.
	FailureDelay    time.Duration
	MaxFailureDelay time.Duration
	DebugPasswords  bool
	Debug           bool
	Log             *slog.Logger
	Shared          *Shared
	// auth_ssl_require_client_cert and auth_ssl_username_from_cert: checked
	// before any mechanism runs (docs/protocol.md §1.3).
	SSLRequireClientCert, SSLUsernameFromCert bool
	// SASL holds the mechanisms' settings (realms, anonymous user name,
	// host name); nil means defaults.
	SASL *sasl.Settings
	// Observe, if set, is told the outcome of every finished request.
	Observe func(mech string, status engine.Status, d time.Duration)
	// Limits bound what a client can make authd hold; zero fields take
	// the defaults (the request deadline: 8 s on a client socket, 25 s on
	// a login socket).
	Limits Limits
	// PeerAddress (TCP listeners): a request without rip= (or lip=) gets
	// the connection's peer (or local) address and port instead, so that
	// the brute-force defence and allow_nets see where it came from; and
	// it never counts as local for allow_nets = local (engine.Info.NotLocal).
	// Postfix sends rip= and lip= (docs/protocol.md §3), which win.
	PeerAddress bool
	// Proxy, if set, finishes the proxy fields of successful logins on a
	// login socket (host resolved to hostip, proxy_maybe decided), as
	// Dovecot's auth does before the reply leaves. Client sockets send
	// them as the passdb gave them, as Dovecot does.
	Proxy ProxyFinisher
}

// ClientEngine is what the client protocol needs from the engine: what
// the mechanisms need, and the end of every request, which reports its
// outcome to the brute-force defence, logs it and says when a failure's
// reply may leave.
type ClientEngine interface {
	sasl.Engine
	FinishAuth(info *engine.Info, res engine.Result, limit time.Duration) time.Time
	AbandonAuth(info *engine.Info)
}

// ClientServer serves the client protocol on accepted connections.
type ClientServer struct {
	cfg       ClientConfig
	protocol  string // "client" or "login", for logs
	handshake []byte // VERSION, MECH lines, SPID: the part common to every connection
	mechs     map[string]sasl.Def
	delay     *delayQueue

	limits Limits
	nconns connLimiter
	warn   ratelog.Limiter // protocol-error warnings, at most one a second
	full   ratelog.Limiter // the failure-delay queue's overflow
	// stop is stopping for the readers, which check it without the lock.
	stop atomic.Bool

	mu       sync.Mutex
	conns    map[*clientConn]struct{}
	stopping bool
	inflight sync.WaitGroup
	runDone  chan struct{}
	cancel   context.CancelFunc
	workers  *workers
}

// NewClientServer builds a server; call Run to start its delay queue and
// its request deadlines.
func NewClientServer(cfg ClientConfig) *ClientServer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &ClientServer{cfg: cfg, mechs: map[string]sasl.Def{}, conns: map[*clientConn]struct{}{}, protocol: "client"}
	request := DefaultClientRequest
	if cfg.Login {
		s.protocol = "login"
		request = DefaultLoginRequest
	}
	s.limits = cfg.Limits.withDefaults(request)
	s.nconns = connLimiter{max: s.limits.MaxConns, refused: &cfg.Shared.Stats.Refused, log: cfg.Log}
	var b []byte
	b = append(b, "VERSION\t1\t2\n"...)
	for _, m := range cfg.Mechs {
		s.mechs[m.Name] = m
		b = append(b, "MECH\t"...)
		b = append(b, m.Name...)
		for _, f := range m.Flags {
			b = append(b, '\t')
			b = append(b, f...)
		}
		b = append(b, '\n')
	}
	// MECH lines must precede SPID: Postfix takes an early SPID as a sign
	// of a master socket (docs/protocol.md §1.2).
	b = append(b, "SPID\t"...)
	b = strconv.AppendUint(b, uint64(cfg.Shared.SPID), 10)
	b = append(b, '\n')
	s.handshake = b
	s.delay = newDelayQueue(cfg.FailureDelay, &cfg.Shared.delayed, s.limits.MaxDelayed, s.delayOverflow)
	s.workers = newWorkers(10 * time.Second)
	s.runDone = make(chan struct{})
	return s
}

// Run runs the failure-delay queue and answers steps that outlive their
// deadline (deadline.go) until ctx ends or Shutdown is called.
func (s *ClientServer) Run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	defer close(s.runDone)
	var wg sync.WaitGroup
	wg.Go(func() { s.overdueSweeper(ctx) })
	s.delay.run(ctx)
	cancel()
	wg.Wait()
}

// delayOverflow counts and logs a failure answered at once because the
// process holds Limits.MaxDelayed delayed replies already.
func (s *ClientServer) delayOverflow() {
	s.cfg.Shared.Stats.DelayOverflow.Add(1)
	s.full.Log(s.cfg.Log, slog.LevelWarn, "failure-delay queue full: answering failures at once", "max", s.limits.MaxDelayed)
}

// DelayedFailures is the number of FAIL replies waiting for the delay.
func (s *ClientServer) DelayedFailures() int { return s.delay.Len() }

// Shutdown stops reading from every connection, lets requests already in
// the engine finish and get their replies (delayed failures are sent at
// once), then closes the connections. It returns when done or when ctx
// ends.
func (s *ClientServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	s.stop.Store(true)
	for c := range s.conns {
		// Wake the reader; it sees stopping and exits without closing.
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	// Delayed failures go out now, and so do those of requests still in
	// the engine (docs/protocol.md §1.7): the wait below is for the
	// engine, not for the delay.
	s.delay.close()
	done := make(chan struct{})
	go func() {
		s.inflight.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: requests still running: %w", ctx.Err())
	}
	s.workers.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.close()
		if c.cpid != 0 && s.cfg.Login {
			s.cfg.Shared.Logins.remove(c.cpid, c)
		}
	}
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-s.runDone
	}
	return err
}

// clientConn is one client connection.
type clientConn struct {
	s      *ClientServer
	nc     net.Conn
	cuid   uint32
	cookie [16]byte
	cpid   uint32
	minor  uint64
	log    *slog.Logger

	dc *deadlineConn // the reading side, with the handshake and line deadlines
	// The reading role (docs/architecture.md §The request pipeline): the goroutine that holds
	// it reads the next line. It answers a light request itself and
	// hands the role to another goroutine when the request turns out to
	// wait (relay).
	lr         *LineReader
	gotVersion bool

	wmu      sync.Mutex
	closed   bool
	flushing bool // a goroutine is writing wbuf
	// corked: the reader is answering lines it read together, and writes
	// their replies (and any other that finished meanwhile) when it runs
	// out of them, in one write.
	corked  atomic.Bool
	wbuf    []byte        // replies waiting for the writer
	wspare  []byte        // the other buffer, reused
	writing int           // bytes in the write under way
	drained chan struct{} // closed when the unread replies fall under the limit
	// ctx ends when the connection closes: requests still in the engine
	// for a client that left may stop early.
	ctx    context.Context
	cancel context.CancelFunc
	// peer and local are the TCP connection's ends (ClientConfig.PeerAddress).
	peer, local netip.AddrPort

	mu      sync.Mutex
	pending map[uint32]*clientReq
	// login sockets: successful requests waiting for REQUEST
	done map[uint32]*LoginSuccess
}

// clientReq is a request in progress.
type clientReq struct {
	id          uint32
	mech        sasl.Mechanism
	def         sasl.Def
	info        *engine.Info
	finalRespOK bool
	waitingCont bool // the server sent CONT and waits for the client
	running     bool // a step is running in the engine
	finalSent   bool // final data went out as CONT; the next CONT finishes
	final       engine.Result
	start       time.Time
	timer       *time.Timer
	sctx        *stepContext // the running step's context (deadline.go)
	first       stepContext  // the first step's, kept here: no allocation
	ownInfo     engine.Info  // where info points: no allocation of its own
}

// clientReqs recycles requests: a request with its Info was 1.1 KB, most
// of what a cached login allocated, and each collection costs the logins
// running through it (docs/architecture.md §The request pipeline, step 6,
// has the rules).
var clientReqs = sync.Pool{New: func() any { return new(clientReq) }}

// finishedClean reports whether req, just taken from the pending table
// with its answer, can be recycled once its step returns: it ran one
// step, on a context that nothing waited on (its real context never made,
// so no timer, Done channel or AfterFunc refers to it), that did not
// expire and whose connection did not end, so no work was left running
// with it (an abandoned wait needs an ended context).
func (req *clientReq) finishedClean() bool {
	sc := &req.first
	return req.timer == nil && req.sctx == sc && sc.real.Load() == nil &&
		!sc.expired.Load() && sc.parent.Err() == nil
}

// recycle gives req back to clientReqs; the caller, the goroutine that
// ran its step, does not touch req afterwards.
func (req *clientReq) recycle() {
	*req = clientReq{}
	clientReqs.Put(req)
}

// Serve runs the protocol on nc until the client disconnects or the
// server shuts down. It recovers panics so that one connection cannot take
// the process down.
func (s *ClientServer) Serve(nc net.Conn) {
	nc = rawsock.Wrap(nc)
	c := &clientConn{
		s:       s,
		nc:      nc,
		cuid:    s.cfg.Shared.cuid.Add(1),
		pending: map[uint32]*clientReq{},
		log:     s.cfg.Log,
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if s.cfg.PeerAddress {
		c.peer, c.local = tcpEnd(nc.RemoteAddr()), tcpEnd(nc.LocalAddr())
	}
	if _, err := rand.Read(c.cookie[:]); err != nil {
		s.cfg.Log.Error("no randomness for COOKIE", "err", err)
		_ = nc.Close()
		return
	}
	if !s.nconns.acquire() {
		_ = nc.Close()
		return
	}
	c.dc = newDeadlineConn(nc, s.limits, &s.stop)
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		s.nconns.release()
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.cfg.Shared.Stats.Connections.Add(1)

	// Send the whole handshake at once, without waiting for the client's
	// (docs/protocol.md §1.2 recommendation).
	hs := make([]byte, 0, len(s.handshake)+80)
	hs = append(hs, s.handshake...)
	hs = append(hs, "CUID\t"...)
	hs = strconv.AppendUint(hs, uint64(c.cuid), 10)
	hs = append(hs, "\nCOOKIE\t"...)
	hs = hex.AppendEncode(hs, c.cookie[:])
	hs = append(hs, "\nDONE\n"...)
	c.lr = NewLineReader(c.dc, clientMaxLine)
	if !c.write(hs) {
		c.end()
		return
	}
	c.read()
}

// read holds the reading role until the connection ends, or until the
// role moves to another goroutine. It recovers panics so that one
// connection cannot take the process down.
func (c *clientConn) read() {
	moved := false
	defer func() {
		if r := recover(); r != nil {
			c.s.cfg.Shared.Stats.Panics.Add(1)
			c.s.cfg.Log.Error("panic in client connection", "panic", r, "stack", string(debug.Stack()))
		}
		if !moved {
			// What the last lines' replies left corked leaves now:
			// the requests in flight still owe theirs too.
			c.uncork()
			c.end()
		}
	}()
	moved = c.readLoop()
}

// relay hands the reading role to another goroutine: the request the
// reader answers itself is about to wait (a backend, a costly hash), and
// the connection's other requests must not wait with it.
func (c *clientConn) relay() {
	c.s.workers.run(c.read)
}

// end closes the connection once nobody reads it any more.
func (c *clientConn) end() {
	s := c.s
	s.cfg.Shared.Stats.Connections.Add(-1)
	s.nconns.release()
	s.mu.Lock()
	stopping := s.stopping
	if !stopping {
		delete(s.conns, c)
	}
	s.mu.Unlock()
	if stopping {
		// Shutdown stopped the reader; the requests in flight still
		// owe replies on this connection, and Shutdown closes it once
		// they are sent.
		return
	}
	c.close()
	if c.cpid != 0 && s.cfg.Login {
		s.cfg.Shared.Logins.remove(c.cpid, c)
	}
}

// readLoop reads and handles lines until the connection ends (false) or
// a request relayed the reading role (true).
func (c *clientConn) readLoop() bool {
	for {
		if !c.lr.HasLine() {
			// Out of lines read together: their replies leave now,
			// before the wait for more.
			c.uncork()
		}
		if !c.waitUnread() {
			return false
		}
		line, err := c.lr.ReadLine()
		if err != nil {
			c.readFailed(err)
			return false
		}
		c.corked.Store(true)
		switch c.handleLine(line) {
		case lineClose:
			return false
		case lineMoved:
			return true
		}
	}
}

// lineOutcome is what handling a line leaves the reader to do.
type lineOutcome uint8

const (
	lineNext  lineOutcome = iota // read the next line
	lineClose                    // close the connection
	lineMoved                    // stop: another goroutine reads now (relay)
)

// outcome is the outcome of a handler that only says whether the
// connection stays open.
func outcome(ok bool) lineOutcome {
	if ok {
		return lineNext
	}
	return lineClose
}

// handleLine handles one line from the client.
func (c *clientConn) handleLine(line string) lineOutcome {
	args := SplitLine(line)
	if !c.gotVersion {
		return outcome(c.handleVersion(args, line))
	}
	if c.cpid == 0 {
		return outcome(c.handleCPID(args))
	}
	if c.stopping() {
		return lineClose
	}
	switch args[0] {
	case "AUTH":
		return c.handleAuth(args, line)
	case "CONT":
		return c.handleCont(args)
	case "CANCEL":
		return outcome(c.handleCancel(args))
	}
	c.log.Warn("BUG: client sent an unknown command; closing", "cmd", truncate(args[0], 32))
	return lineClose
}

// handleVersion takes the client's VERSION, the start of its handshake.
func (c *clientConn) handleVersion(args []string, line string) bool {
	if len(args) != 3 || args[0] != "VERSION" {
		c.log.Warn("client did not start with VERSION; closing")
		return false
	}
	major, err1 := strconv.ParseUint(args[1], 10, 32)
	minor, err2 := strconv.ParseUint(args[2], 10, 32)
	if err1 != nil || err2 != nil || major != 1 {
		c.log.Warn("client sent an unsupported VERSION; closing", "version", line)
		return false
	}
	c.minor = minor
	c.gotVersion = true
	return true
}

// handleCPID takes the client's CPID, the end of its handshake.
func (c *clientConn) handleCPID(args []string) bool {
	if len(args) < 2 || args[0] != "CPID" {
		c.log.Warn("client sent a command before CPID; closing", "cmd", args[0])
		return false
	}
	pid, err := strconv.ParseUint(args[1], 10, 32)
	if err != nil || pid == 0 {
		c.log.Warn("client sent an invalid CPID; closing")
		return false
	}
	c.cpid = uint32(pid)
	if c.s.cfg.Login && !c.s.cfg.Shared.Logins.add(c.cpid, c) {
		c.log.Warn("login client gave the PID of an existing connection; closing", "cpid", pid)
		c.cpid = 0
		return false
	}
	c.dc.handshakeDone()
	return true
}

// stopping reports whether the server is shutting down. It is read once
// per line: the atomic copy, not the server-wide lock every connection's
// reader would take in turn.
func (c *clientConn) stopping() bool { return c.s.stop.Load() }

// readFailed logs why reading ended, when that is worth a line.
func (c *clientConn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, ErrLineTooLong):
		c.s.warn.Log(c.log, slog.LevelWarn, "client sent a line longer than the limit; closing", "limit", clientMaxLine)
	case errors.As(err, &ne) && ne.Timeout() && !c.stopping():
		c.s.warn.Log(c.log, slog.LevelWarn, "client did not finish its handshake or a line in time; closing")
	case !errors.Is(err, io.EOF) && !c.stopping() && !isClosed(err) && !errors.Is(err, errStopping):
		c.log.Debug("client read failed", "err", err)
	}
}

// waitUnread stops reading requests while the client has more than
// Limits.MaxUnread bytes of replies it did not read: a client that
// pipelines without reading cannot make authd buffer without end. It is
// false when the connection closed meanwhile.
func (c *clientConn) waitUnread() bool {
	for {
		c.wmu.Lock()
		if c.closed {
			c.wmu.Unlock()
			return false
		}
		if len(c.wbuf)+c.writing <= c.s.limits.MaxUnread {
			c.wmu.Unlock()
			return true
		}
		if c.corked.Load() {
			// The replies over the limit may be the reader's own, queued
			// for its next write: that write comes first.
			c.wmu.Unlock()
			c.uncork()
			continue
		}
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		ch := c.drained
		c.wmu.Unlock()
		<-ch
	}
}

// noteDrained wakes a reader waiting in waitUnread; c.wmu is held.
func (c *clientConn) noteDrained() {
	if c.drained != nil && (c.closed || len(c.wbuf)+c.writing <= c.s.limits.MaxUnread) {
		close(c.drained)
		c.drained = nil
	}
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// write queues b for the client; false if the connection is gone.
// Replies that finish while another goroutine is in the write syscall are
// appended to the buffer and leave with its next write, so a busy
// pipelined connection pays one syscall for many replies; so do those that
// finish while the reader is answering lines it read together (corked).
func (c *clientConn) write(b []byte) bool {
	c.wmu.Lock()
	if c.closed {
		c.wmu.Unlock()
		return false
	}
	c.wbuf = append(c.wbuf, b...)
	if c.flushing || c.corked.Load() {
		c.wmu.Unlock()
		return true
	}
	c.flushing = true
	c.wmu.Unlock()
	// When other requests of this connection are in flight, let those
	// finishing right now add their replies, so that one write carries
	// them all. When none is, no reply can join: write at once, since a
	// yield on a busy server puts the writer behind every runnable
	// goroutine, which is latency a lightly loaded connection would pay
	// for nothing. Nor can one join when no goroutine waits to run (package
	// yield).
	if c.othersInFlight() {
		yield.Others()
	}
	c.wmu.Lock()
	return c.flushLocked()
}

// uncork ends the reader's batch: the replies queued meanwhile leave in
// one write, unless another goroutine is writing already (it takes them).
func (c *clientConn) uncork() {
	c.wmu.Lock()
	c.corked.Store(false)
	if c.flushing || c.closed || len(c.wbuf) == 0 {
		c.wmu.Unlock()
		return
	}
	c.flushing = true
	c.flushLocked()
}

// flushLocked writes the buffer until it stays empty; c.wmu is held and
// c.flushing set by the caller, and both are released. It is false when
// the connection failed.
func (c *clientConn) flushLocked() bool {
	for len(c.wbuf) > 0 {
		buf := c.wbuf
		c.wbuf = c.wspare[:0]
		c.writing = len(buf)
		c.wmu.Unlock()
		// A client that stops reading must not block the engine forever.
		_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		c.writing = 0
		c.wspare = buf[:0]
		if err != nil {
			c.closed = true
			c.flushing = false
			c.wbuf = nil
			_ = c.nc.Close()
			c.noteDrained()
			c.wmu.Unlock()
			return false
		}
		c.noteDrained()
	}
	c.flushing = false
	c.wmu.Unlock()
	return true
}

func (c *clientConn) close() {
	c.cancel()
	c.wmu.Lock()
	if !c.closed {
		c.closed = true
		_ = c.nc.Close()
	}
	c.noteDrained()
	c.wmu.Unlock()
	c.mu.Lock()
	for id, r := range c.pending {
		if r.timer != nil {
			r.timer.Stop()
		}
		if !r.running {
			// A running step ends in a finish that finds it gone.
			c.s.cfg.Engine.AbandonAuth(r.info)
		}
		delete(c.pending, id)
	}
	for id, d := range c.done {
		d.timer.Stop()
		delete(c.done, id)
	}
	c.mu.Unlock()
}

// handleAuth handles AUTH (docs/protocol.md §1.3): the command, its
// parameters, then the mechanism's first step. false closes the
// connection.
func (c *clientConn) handleAuth(args []string, line string) lineOutcome {
	if len(args) < 3 {
		c.log.Warn("BUG: AUTH without id or mechanism; closing")
		return lineClose
	}
	id, ok := parseID(args[1])
	if !ok || id == 0 {
		c.log.Warn("BUG: AUTH with an invalid id; closing")
		return lineClose
	}
	def, ok := c.s.mechs[strings.ToUpper(args[2])]
	if !ok {
		c.log.Warn("BUG: AUTH with an unsupported mechanism; closing", "mech", truncate(args[2], 32))
		return lineClose
	}
	// The request, its info and its first step's context live and die
	// together: one object, recycled when its answer leaves nothing
	// holding it (finishedClean).
	req := clientReqs.Get().(*clientReq)
	info := &req.ownInfo
	req.id, req.def, req.start = id, def, time.Now()
	*info = engine.Info{Mech: def.Name, ClientPID: strconv.FormatUint(uint64(c.cpid), 10), Arrived: req.start, Protocol: c.s.protocol}
	req.info = info
	p, ok := c.authParams(req, args[3:])
	if !ok {
		return lineClose
	}
	if c.s.cfg.Debug || info.Debug {
		c.log.Debug("client in", "line", c.redact(line))
	}
	c.mu.Lock()
	if _, dup := c.pending[id]; dup {
		c.mu.Unlock()
		c.log.Warn("BUG: AUTH reused a pending id; closing", "id", id)
		return lineClose
	}
	if len(c.pending) >= c.s.limits.MaxPending {
		c.mu.Unlock()
		c.s.warn.Log(c.log, slog.LevelWarn, "client has too many requests in progress; refusing more", "max", c.s.limits.MaxPending)
		c.send("FAIL\t" + itoa(id) + "\tcode=temp_fail\treason=Too many requests in progress")
		return lineNext
	}
	c.pending[id] = req
	req.running = true
	req.first.init(c.ctx, req.start.Add(c.s.limits.Request))
	req.sctx = &req.first
	c.onReader(req)
	c.mu.Unlock()
	return c.startAuth(req, p)
}

// authParams is what AUTH's parameters say beyond the request info: the
// initial response, if any.
type authParams struct {
	resp     string
	haveResp bool
}

// authParams reads AUTH's parameters into req. false: a protocol error
// (logged), the connection closes.
func (c *clientConn) authParams(req *clientReq, params []string) (authParams, bool) {
	var p authParams
	info := req.info
	haveService := false
	for _, param := range params {
		if p.haveResp {
			c.log.Warn("BUG: AUTH parameter after resp; closing")
			return p, false
		}
		k, v, hasV := strings.Cut(param, "=")
		switch k {
		case "service", "protocol":
			info.Service = v
			haveService = true
		case "secured":
			info.Secured = "secured"
			if hasV && v == "tls" {
				info.Secured = "TLS"
			}
		case "final-resp-ok":
			req.finalRespOK = true
		case "no-penalty":
			// Only where it may be trusted: anywhere else a client
			// could switch the brute-force defence off for itself.
			info.NoPenalty = c.s.cfg.Trusted
		case "resp":
			p.resp, p.haveResp = v, true
		default:
			setInfoParam(info, k, v)
		}
	}
	if !haveService {
		c.log.Warn("BUG: AUTH without service; closing")
		return p, false
	}
	if c.s.cfg.PeerAddress {
		c.peerDefaults(info)
	}
	// real_* default to the plain values (docs/protocol.md §1.3).
	info.RealLocalIP = cmp.Or(info.RealLocalIP, info.LocalIP)
	info.RealRemoteIP = cmp.Or(info.RealRemoteIP, info.RemoteIP)
	info.RealLocalPort = cmp.Or(info.RealLocalPort, info.LocalPort)
	info.RealRemotePort = cmp.Or(info.RealRemotePort, info.RemotePort)
	return p, true
}

// peerDefaults fills in the TCP connection's addresses where the client
// sent none (ClientConfig.PeerAddress).
func (c *clientConn) peerDefaults(info *engine.Info) {
	info.NotLocal = true
	if info.RemoteIP == "" && c.peer.IsValid() {
		info.RemoteIP, info.RemotePort = c.peer.Addr().String(), strconv.Itoa(int(c.peer.Port()))
		info.RemoteAddr = c.peer.Addr()
	}
	if info.LocalIP == "" && c.local.IsValid() {
		info.LocalIP, info.LocalPort = c.local.Addr().String(), strconv.Itoa(int(c.local.Port()))
	}
}

// tcpEnd is a TCP address as an AddrPort (IPv4-mapped IPv6 as IPv4), or
// the zero AddrPort for anything else.
func tcpEnd(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// setInfoParam sets one of AUTH's informational parameters. Addresses and
// ports that do not parse are ignored, as Dovecot ignores them; unknown
// parameters too.
func setInfoParam(info *engine.Info, k, v string) {
	ip := func(dst *string) {
		if validIP(v) {
			*dst = v
		}
	}
	port := func(dst *string) {
		if validPort(v) {
			*dst = v
		}
	}
	switch k {
	case "lip":
		ip(&info.LocalIP)
	case "rip":
		if a, err := netipParse(v); err == nil {
			info.RemoteIP, info.RemoteAddr = v, a
		}
	case "lport":
		port(&info.LocalPort)
	case "rport":
		port(&info.RemotePort)
	case "real_lip":
		ip(&info.RealLocalIP)
	case "real_rip":
		ip(&info.RealRemoteIP)
	case "real_lport":
		port(&info.RealLocalPort)
	case "real_rport":
		port(&info.RealRemotePort)
	case "valid-client-cert":
		info.ValidClientCert = true
	case "cert_username":
		info.CertUsername = v
	case "debug":
		info.Debug = true
	case "session":
		info.Session = v
	case "local_name":
		info.LocalName = v
	case "client_id":
		info.ClientID = v
	case "forward_fields":
		for _, f := range SplitLine(v) {
			fk, fv, _ := strings.Cut(f, "=")
			if fk != "" {
				info.ForwardFields.Set("forward_"+fk, fv)
			}
		}
	}
}

// startAuth decodes the initial response, applies the client-certificate
// rules and runs the mechanism's first step.
func (c *clientConn) startAuth(req *clientReq, p authParams) lineOutcome {
	id, info := req.id, req.info
	var data []byte
	present := p.haveResp
	if p.haveResp {
		switch {
		case p.resp == "" && c.minor < 2:
			// Exim sends an empty resp= meaning "none" (docs/protocol.md
			// §1.3).
			present = false
		case p.resp == "" || p.resp == "=":
			data = []byte{}
		default:
			d, err := DecodeBase64(p.resp)
			if err != nil {
				c.finishImmediate(req, "FAIL\t"+itoa(id)+"\tcode=invalid_base64\treason=Invalid base64 data in initial response", "invalid base64")
				return lineNext
			}
			data = d
		}
	}
	if c.s.cfg.SSLRequireClientCert && !info.ValidClientCert {
		c.finishImmediate(req, "FAIL\t"+itoa(id)+"\treason=Client didn't present valid SSL certificate", "no valid client certificate")
		return lineNext
	}
	if c.s.cfg.SSLUsernameFromCert && info.CertUsername == "" {
		c.finishImmediate(req, "FAIL\t"+itoa(id)+"\treason=SSL certificate didn't contain username", "no user name in the client certificate")
		return lineNext
	}
	if present && !req.def.AllowNUL && hasNUL(data) {
		c.finishFail(req, engine.Result{Status: engine.StatusFail, Reason: "NUL in data"}, false)
		return lineNext
	}
	return c.step(req, data, present)
}

func hasNUL(b []byte) bool {
	for _, x := range b {
		if x == 0 {
			return true
		}
	}
	return false
}

func validIP(s string) bool {
	_, err := netipParse(s)
	return err == nil
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

func itoa(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// redact hides resp= payloads unless auth_debug_passwords is on
// (docs/protocol.md §5.10).
func (c *clientConn) redact(line string) string {
	if c.s.cfg.DebugPasswords {
		return line
	}
	if i := strings.Index(line, "\tresp="); i >= 0 {
		return line[:i] + "\tresp=<hidden>"
	}
	if strings.HasPrefix(line, "CONT\t") {
		if i := strings.LastIndexByte(line, '\t'); i > 4 {
			return line[:i] + "\t<hidden>"
		}
	}
	return line
}

// handleCont handles CONT (docs/protocol.md §1.4).
func (c *clientConn) handleCont(args []string) lineOutcome {
	if len(args) < 3 {
		c.log.Warn("BUG: CONT without data; closing")
		return lineClose
	}
	id, ok := parseID(args[1])
	if !ok {
		c.log.Warn("BUG: CONT with an invalid id; closing")
		return lineClose
	}
	if c.s.cfg.Debug {
		c.log.Debug("client in", "line", c.redact(strings.Join(args, "\t")))
	}
	c.mu.Lock()
	req, ok := c.pending[id]
	if !ok {
		c.mu.Unlock()
		c.send("FAIL\t" + itoa(id) + "\treason=Authentication request timed out")
		return lineNext
	}
	if !req.waitingCont {
		delete(c.pending, id)
		if req.timer != nil {
			req.timer.Stop()
		}
		if !req.running {
			c.s.cfg.Engine.AbandonAuth(req.info)
		}
		c.mu.Unlock()
		c.send("FAIL\t" + itoa(id) + "\treason=Unexpected continuation")
		return lineNext
	}
	req.waitingCont = false
	req.running = true
	req.sctx = newStepContext(c.ctx, time.Now().Add(c.s.limits.Request))
	c.onReader(req)
	if req.timer != nil {
		req.timer.Stop()
	}
	c.mu.Unlock()

	if req.finalSent {
		// The client acknowledged the final server data. RFC 5802 wants an
		// empty response, but Dovecot 2.3 succeeds whatever it is (checked
		// against the real server), and so do we.
		c.finishOK(req, req.final, nil)
		return lineNext
	}
	data, err := DecodeBase64(args[2])
	if err != nil {
		c.finishImmediate(req, "FAIL\t"+itoa(id)+"\tcode=invalid_base64\treason=Invalid base64 data in continued response", "invalid base64")
		return lineNext
	}
	if !req.def.AllowNUL && hasNUL(data) {
		c.finishFail(req, engine.Result{Status: engine.StatusFail, Reason: "NUL in data"}, false)
		return lineNext
	}
	return c.step(req, data, true)
}

// handleCancel drops a request silently; 2.3 sends no reply.
func (c *clientConn) handleCancel(args []string) bool {
	if len(args) < 2 {
		return false
	}
	id, ok := parseID(args[1])
	if !ok {
		c.log.Warn("BUG: CANCEL with an invalid id; closing")
		return false
	}
	c.mu.Lock()
	if req, ok := c.pending[id]; ok && !req.running {
		if req.timer != nil {
			req.timer.Stop()
		}
		c.s.cfg.Engine.AbandonAuth(req.info)
		delete(c.pending, id)
	} else if ok {
		// A running step cannot be aborted (docs/protocol.md §1.6); its reply is dropped
		// because the request is no longer pending.
		delete(c.pending, id)
	}
	c.mu.Unlock()
	return true
}

// step runs one mechanism step. A light mechanism's step runs on the
// reader itself, which saves the hand-over to a worker that most of a
// cached or passwd-file login's cost was at a moderate rate; the step
// relays the reading role before it first waits (stepContext.WillBlock),
// so a slow backend still holds up no other request on this connection.
// Other mechanisms hash on their own (SCRAM) and run on a worker.
func (c *clientConn) step(req *clientReq, data []byte, present bool) lineOutcome {
	c.s.inflight.Add(1)
	sc := req.sctx
	if sc.reader == nil {
		c.s.workers.run(func() {
			if c.runStep(req, data, present) {
				req.recycle()
			}
		})
		return lineNext
	}
	recycle := c.runStep(req, data, present)
	// No relay after this: a goroutine the step left behind may still
	// call Done, but the role stays here. If the relay came first, the
	// role has moved.
	moved := !sc.relayed.CompareAndSwap(false, true)
	if recycle {
		req.recycle()
	}
	if moved {
		return lineMoved
	}
	return lineNext
}

// onReader marks req's next step, whose context was just made, as one
// that runs on the reader when its mechanism is light; c.mu is held (the
// sweeper reads the mark).
func (c *clientConn) onReader(req *clientReq) {
	if req.def.Light {
		req.sctx.reader = c
	}
}

// runStep runs one mechanism step and answers it. recycle: the answer
// was final and nothing else holds req (finishedClean).
func (c *clientConn) runStep(req *clientReq, data []byte, present bool) (recycle bool) {
	s := c.s
	defer s.inflight.Done()
	defer func() {
		if r := recover(); r != nil {
			s.cfg.Shared.Stats.Panics.Add(1)
			s.cfg.Log.Error("panic in auth request", "panic", r, "stack", string(debug.Stack()))
			c.finishFail(req, engine.Result{Status: engine.StatusTempFail, Reason: "internal error"}, true)
			recycle = false
		}
	}()
	if req.mech == nil {
		req.mech = req.def.New(&sasl.Env{Engine: s.cfg.Engine, Info: req.info, Settings: s.cfg.SASL, SPID: s.cfg.Shared.SPID, CUID: c.cuid})
	}
	// The connection's context ends work for a client that went
	// away; the step's deadline bounds a backend that does not
	// answer, and the client hears "try again" when it passes even if
	// the step has not returned yet (the server's overdueSweeper).
	ctx := req.sctx
	defer ctx.release()
	rep := req.mech.Step(ctx, data, present)
	if !rep.Done {
		c.sendCont(req, rep.Challenge)
		return false
	}
	if rep.Result.Status == engine.StatusOK && s.cfg.Login && s.cfg.Proxy != nil {
		rep.Result = s.cfg.Proxy.Finish(ctx, req.info, rep.Result)
	}
	if rep.Result.Status != engine.StatusOK {
		return c.finishFail(req, rep.Result, false)
	}
	if rep.Final != nil && !req.finalRespOK {
		// Without final-resp-ok the final data goes as a CONT and the
		// OK follows the client's empty answer (docs/protocol.md §1.5).
		req.final = rep.Result
		req.finalSent = true
		c.sendCont(req, rep.Final)
		return false
	}
	return c.finishOK(req, rep.Result, rep.Final)
}

// sendCont sends a challenge and arms the request timeout.
func (c *clientConn) sendCont(req *clientReq, challenge []byte) {
	c.mu.Lock()
	if c.pending[req.id] != req {
		c.mu.Unlock()
		return // cancelled meanwhile
	}
	req.running = false
	req.waitingCont = true
	req.timer = time.AfterFunc(requestTimeout, func() {
		// Abandoned requests disappear silently (docs/protocol.md §1.6).
		c.mu.Lock()
		if c.pending[req.id] == req && req.waitingCont {
			c.s.cfg.Engine.AbandonAuth(req.info)
			delete(c.pending, req.id)
		}
		c.mu.Unlock()
	})
	c.mu.Unlock()
	c.send("CONT\t" + itoa(req.id) + "\t" + EncodeBase64(challenge))
}

// othersInFlight reports whether requests of this connection are still
// waiting for their answers (the one being answered has left the table).
func (c *clientConn) othersInFlight() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

// take removes req from the pending table; false if it was cancelled.
func (c *clientConn) take(req *clientReq) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending[req.id] != req {
		return false
	}
	delete(c.pending, req.id)
	if req.timer != nil {
		req.timer.Stop()
	}
	return true
}

// finishOverdue answers a request whose step outlived its deadline with a
// temporary failure. The step itself finishes later, finds the request
// gone and gives its brute-force reservation back.
func (c *clientConn) finishOverdue(req *clientReq) {
	if !c.take(req) {
		return
	}
	c.s.cfg.Shared.Stats.Overdue.Add(1)
	c.observe(req, engine.StatusTempFail)
	c.s.warn.Log(c.log, slog.LevelWarn, "request took longer than its deadline; answered with a temporary failure", "deadline", c.s.limits.Request.String())
	c.send("FAIL\t" + itoa(req.id) + "\tcode=temp_fail")
}

// finishImmediate fails a request with a fixed line, without delay: the
// handler's own failures are not guesses (docs/protocol.md §1.7).
func (c *clientConn) finishImmediate(req *clientReq, line, reason string) {
	if !c.take(req) {
		c.s.cfg.Engine.AbandonAuth(req.info)
		return
	}
	c.observe(req, engine.StatusFail)
	c.s.cfg.Engine.FinishAuth(req.info, engine.Result{Status: engine.StatusFail, NoDelay: true, Reason: reason}, 0)
	c.send(line)
}

func (c *clientConn) observe(req *clientReq, st engine.Status) {
	if f := c.s.cfg.Observe; f != nil {
		f(req.def.Name, st, time.Since(req.start))
	}
}

// finishFail sends FAIL, through the failure delay unless the passdb set
// nodelay or the failure was internal. recycle: see finishedClean.
func (c *clientConn) finishFail(req *clientReq, res engine.Result, internal bool) (recycle bool) {
	if !c.take(req) {
		c.s.cfg.Engine.AbandonAuth(req.info)
		return false
	}
	recycle = !internal && req.finishedClean()
	c.observe(req, res.Status)
	line := string(appendFail(nil, req.id, res))
	release := c.s.cfg.Engine.FinishAuth(req.info, res, c.s.cfg.MaxFailureDelay)
	if internal || release.IsZero() {
		c.send(line)
		return recycle
	}
	c.s.inflight.Add(1)
	c.s.delay.add(release, func() {
		defer c.s.inflight.Done()
		c.send(line)
	})
	return recycle
}

// finishOK sends OK and, on login sockets, keeps the request for REQUEST.
// recycle: see finishedClean.
func (c *clientConn) finishOK(req *clientReq, res engine.Result, final []byte) (recycle bool) {
	if !c.take(req) {
		c.s.cfg.Engine.AbandonAuth(req.info)
		return false
	}
	recycle = req.finishedClean()
	c.observe(req, res.Status)
	c.s.cfg.Engine.FinishAuth(req.info, res, 0)
	extra := res.Fields
	if final != nil {
		extra = append(extra.Clone(), fields.Field{Key: "resp", Value: EncodeBase64(final)})
	}
	b := appendOK(make([]byte, 0, 128), req.id, res, extra, c.s.cfg.Login)
	if c.s.cfg.Login && !res.Fields.Has("nologin") && !res.Fields.Has("proxy") {
		recycle = false // the kept success holds req.info
		c.keepLogin(req, res)
	}
	c.write(append(b, '\n'))
	return recycle
}

func (c *clientConn) send(line string) {
	b := make([]byte, 0, len(line)+1)
	b = append(b, line...)
	b = append(b, '\n')
	c.write(b)
}

// appendOK renders an OK line in Dovecot's field order (docs/protocol.md §1.5).
func appendOK(b []byte, id uint32, res engine.Result, extra fields.Fields, login bool) []byte {
	b = append(b, "OK\t"...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, "\tuser="...)
	b = tabescape.Append(b, res.User)
	b = appendFields(b, extra, true)
	b = appendTrailer(b, res, extra)
	if login && extra.Has("proxy") {
		if res.ProxyPassword != "" {
			b = append(b, "\tpass="...)
			b = tabescape.Append(b, res.ProxyPassword)
		}
		if res.MasterUser != "" {
			b = append(b, "\tmaster="...)
			b = tabescape.Append(b, res.MasterUser)
		}
	}
	return b
}

// appendFail renders a FAIL line (docs/protocol.md §1.5).
func appendFail(b []byte, id uint32, res engine.Result) []byte {
	b = append(b, "FAIL\t"...)
	b = strconv.AppendUint(b, uint64(id), 10)
	user := res.User
	if user == "" {
		user = res.OrigUser
	}
	if user != "" {
		b = append(b, "\tuser="...)
		b = tabescape.Append(b, user)
	}
	switch res.Status {
	case engine.StatusTempFail:
		b = append(b, "\tcode=temp_fail"...)
	case engine.StatusAuthzFail:
		b = append(b, "\tcode=authz_fail"...)
	case engine.StatusUserDisabled:
		b = append(b, "\tcode=user_disabled"...)
	case engine.StatusPassExpired:
		b = append(b, "\tcode=pass_expired"...)
	}
	b = appendFields(b, res.Fields, false)
	if res.User != "" {
		b = appendTrailer(b, res, res.Fields)
	}
	return b
}

// appendFields writes extra fields; nologin and proxy are bare keys in 2.3
// OK replies.
func appendFields(b []byte, fs fields.Fields, ok bool) []byte {
	for _, f := range fs {
		b = append(b, '\t')
		b = tabescape.Append(b, f.Key)
		if f.Value == "" || (ok && (f.Key == "nologin" || f.Key == "proxy")) {
			continue
		}
		b = append(b, '=')
		b = tabescape.Append(b, f.Value)
	}
	return b
}

// appendTrailer writes original_user, auth_user and anonymous.
func appendTrailer(b []byte, res engine.Result, extra fields.Fields) []byte {
	if res.OrigUser != "" && res.OrigUser != res.User && !extra.Has("original_user") {
		b = append(b, "\toriginal_user="...)
		b = tabescape.Append(b, res.OrigUser)
	}
	if res.MasterUser != "" {
		b = append(b, "\tauth_user="...)
		b = tabescape.Append(b, res.MasterUser)
	}
	if res.Anonymous {
		b = append(b, "\tanonymous"...)
	}
	return b
}
