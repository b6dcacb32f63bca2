package dovecot

import (
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/ratelog"
)

// Limits bound what one client of a socket can make authd hold. The
// defaults never disturb Dovecot, Postfix or doveadm: login processes and
// Postfix keep their connection open for hours between requests, so the
// time *between* lines is never limited; only a handshake that does not
// come and a line that does not end are.
type Limits struct {
	// Handshake: the client's handshake (VERSION, and CPID on a client
	// socket) must be complete this long after connecting.
	Handshake time.Duration
	// Line: once a line has started, its end must arrive within this.
	Line time.Duration
	// MaxConns: connections served at once on the listener; more are
	// closed at once (logged at most once a second, counted).
	MaxConns int
	// MaxPending: requests in progress on one connection; past it a new
	// request is answered with a temporary failure.
	MaxPending int
	// MaxUnread: replies the client has not read yet; past it authd stops
	// reading the client's requests until it catches up.
	MaxUnread int
	// Request: the longest one request may take in the engine (lookup and
	// verification); past it the client gets a temporary failure.
	Request time.Duration
	// MaxDelayed: failure replies waiting for auth_failure_delay in the
	// whole process (every client and login listener together); past it
	// a failure is answered at once (logged at most once a second,
	// counted in Stats.DelayOverflow). Client sockets only.
	MaxDelayed int
}

// Default limits (docs/operations.md §8 lists them).
const (
	DefaultHandshake     = 10 * time.Second
	DefaultLine          = 30 * time.Second
	DefaultMaxConns      = 4096
	DefaultMaxPending    = 4096
	DefaultMaxUnread     = 64 << 10
	DefaultClientRequest = 8 * time.Second  // under Postfix's 10 s
	DefaultLoginRequest  = 25 * time.Second // under the login processes' 30 s
	DefaultMasterRequest = 150 * time.Second
	// DefaultMaxDelayed is gRPC's max_delayed_answers default too: at
	// about 1 KiB a reply, 10,000 waiting replies are ~10 MB, and an
	// honest server never has that many failures within one delay.
	DefaultMaxDelayed = 10000
)

func (l Limits) withDefaults(request time.Duration) Limits {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.Handshake, DefaultHandshake)
	def(&l.Line, DefaultLine)
	def(&l.Request, request)
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	if l.MaxPending <= 0 {
		l.MaxPending = DefaultMaxPending
	}
	if l.MaxUnread <= 0 {
		l.MaxUnread = DefaultMaxUnread
	}
	if l.MaxDelayed <= 0 {
		l.MaxDelayed = DefaultMaxDelayed
	}
	return l
}

// errStopping ends a read because the server shuts down.
var errStopping = errors.New("dovecot: server shutting down")

// deadlineConn applies the handshake and line deadlines to reads: before
// the handshake is done every read must end by its deadline; after it, a
// read waits without limit while no line has started (a client idle
// between requests), and by the line's start plus Limits.Line once one
// has. Only the reading goroutine uses it.
type deadlineConn struct {
	net.Conn
	limits    Limits
	stopping  *atomic.Bool
	handshake time.Time // zero once the handshake is done
	midLine   bool      // the last byte received was not '\n'
	lineStart time.Time
	// set is the read deadline last given to the connection (valid once
	// armed): a read under the same deadline does not set it again,
	// which is most reads (between lines it is none).
	set   time.Time
	armed bool
}

func newDeadlineConn(nc net.Conn, l Limits, stopping *atomic.Bool) *deadlineConn {
	return &deadlineConn{Conn: nc, limits: l, stopping: stopping, handshake: time.Now().Add(l.Handshake)}
}

// handshakeDone lifts the handshake deadline.
func (d *deadlineConn) handshakeDone() { d.handshake = time.Time{} }

func (d *deadlineConn) Read(p []byte) (int, error) {
	var dl time.Time
	switch {
	case !d.handshake.IsZero():
		dl = d.handshake
	case d.midLine:
		dl = d.lineStart.Add(d.limits.Line)
	}
	if !d.armed || !dl.Equal(d.set) {
		if err := d.Conn.SetReadDeadline(dl); err != nil {
			return 0, err
		}
		d.set, d.armed = dl, true
	}
	// Shutdown sets its flag, then a past deadline: checking the flag
	// after setting ours means one of the two always wins (and a read
	// that set nothing leaves Shutdown's deadline in place).
	if d.stopping.Load() {
		return 0, errStopping
	}
	n, err := d.Conn.Read(p)
	if n > 0 {
		d.noteLine(p[:n])
	}
	return n, err
}

// noteLine tracks whether a line is in progress after b arrived, and
// when the current one started.
func (d *deadlineConn) noteLine(b []byte) {
	endsLine := b[len(b)-1] == '\n'
	startsNew := !d.midLine
	for _, c := range b[:len(b)-1] {
		if c == '\n' {
			startsNew = true
			break
		}
	}
	if !endsLine && startsNew {
		d.lineStart = time.Now()
	}
	d.midLine = !endsLine
}

// connLimiter counts a listener's connections and says no past its cap,
// logging refusals at most once a second.
type connLimiter struct {
	max     int
	n       atomic.Int64
	refused *atomic.Int64
	log     *slog.Logger
	every   ratelog.Limiter
}

// acquire registers a connection; false means "over the cap: close it".
func (c *connLimiter) acquire() bool {
	if c.n.Add(1) > int64(c.max) {
		c.n.Add(-1)
		c.refused.Add(1)
		c.every.Log(c.log, slog.LevelWarn, "connection refused: the listener serves its maximum of connections", "max", c.max)
		return false
	}
	return true
}

func (c *connLimiter) release() { c.n.Add(-1) }
