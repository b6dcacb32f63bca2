package ldap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/authd-project/authd/internal/rawsock"
)

// target is one server to connect to, from `uris` or `hosts`.
type target struct {
	uri     string // as written, for messages
	scheme  string // "ldap", "ldaps" or "ldapi"
	network string // "tcp" or "unix"
	addr    string // host:port or socket path
	host    string // TLS server name
}

// parseTargets reads `uris` (space- or comma-separated, as libldap's
// ldap_initialize takes them) or, when that is empty, `hosts` (host or
// host:port, ldap:// on port 389).
func parseTargets(uris, hosts string) ([]target, error) {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' })
	}
	var out []target
	if strings.TrimSpace(uris) != "" {
		for _, u := range split(uris) {
			t, err := parseURI(u)
			if err != nil {
				return nil, err
			}
			out = append(out, t)
		}
		return out, nil
	}
	for _, h := range split(hosts) {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = strings.Trim(h, "[]"), "389"
		}
		if host == "" {
			return nil, fmt.Errorf("hosts: invalid host %q", h)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return nil, fmt.Errorf("hosts: invalid port in %q", h)
		}
		out = append(out, target{uri: "ldap://" + net.JoinHostPort(host, port), scheme: "ldap", network: "tcp", addr: net.JoinHostPort(host, port), host: host})
	}
	return out, nil
}

// parseURI parses ldap://host[:port][/…], ldaps://host[:port][/…] and
// ldapi://%2Fpath%2Fto%2Fsocket[/…] (RFC 4516; the ldapi socket path sits
// percent-encoded in the host part). A DN or other parts after the host are
// ignored, as ldap_initialize ignores them.
func parseURI(u string) (target, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return target{}, fmt.Errorf("uris: %q is not an LDAP URI", u)
	}
	scheme = strings.ToLower(scheme)
	hostport, _, _ := strings.Cut(rest, "/")
	hostport, _, _ = strings.Cut(hostport, "?")
	t := target{uri: u, scheme: scheme}
	switch scheme {
	case "ldapi":
		p, err := url.PathUnescape(hostport)
		if err != nil {
			return target{}, fmt.Errorf("uris: %q: %v", u, err)
		}
		if p == "" {
			// libldap's compiled-in default on Debian.
			p = "/var/run/slapd/ldapi"
		}
		t.network, t.addr = "unix", p
		return t, nil
	case "ldap", "ldaps":
		port := "389"
		if scheme == "ldaps" {
			port = "636"
		}
		host, p, err := net.SplitHostPort(hostport)
		if err != nil {
			host = strings.Trim(hostport, "[]")
		} else {
			port = p
		}
		if host == "" {
			host = "localhost"
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return target{}, fmt.Errorf("uris: invalid port in %q", u)
		}
		t.network, t.addr, t.host = "tcp", net.JoinHostPort(host, port), host
		return t, nil
	}
	return target{}, fmt.Errorf("uris: %q: unknown scheme %q (ldap, ldaps or ldapi)", u, scheme)
}

// dialer makes bound connections and keeps the failover state shared by
// both pools.
type dialer struct {
	targets  []target
	tls      *tls.Config // for ldaps:// and StartTLS; ServerName set per target
	startTLS bool        // tls = yes
	timeout  time.Duration
	failback time.Duration
	log      *slog.Logger

	mu        sync.Mutex
	downUntil []time.Time
}

// order returns target indexes to try: those not marked down, in
// configuration order (so the first URI is always preferred: failback),
// then the ones marked down as a last resort.
func (d *dialer) order() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	up := make([]int, 0, len(d.targets))
	var down []int
	for i := range d.targets {
		if now.Before(d.downUntil[i]) {
			down = append(down, i)
		} else {
			up = append(up, i)
		}
	}
	return append(up, down...)
}

func (d *dialer) markDown(i int, err error) {
	d.mu.Lock()
	first := !time.Now().Before(d.downUntil[i])
	d.downUntil[i] = time.Now().Add(d.failback)
	d.mu.Unlock()
	if first && len(d.targets) > 1 {
		d.log.Warn("ldap: server unreachable, trying the next one", "uri", d.targets[i].uri, "err", err)
	}
}

func (d *dialer) markUp(i int) {
	d.mu.Lock()
	d.downUntil[i] = time.Time{}
	d.mu.Unlock()
}

// isDown reports whether target i failed within the failback interval.
func (d *dialer) isDown(i int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Now().Before(d.downUntil[i])
}

// binder finishes a new connection: the service bind, or nothing for the
// auth-bind pool. Both kinds of bind are sent raw, before anything wraps
// the connection (go-ldap for binds and listings, the multiplexer of
// mux.go for lookups).
type binder struct {
	saslExternal bool
	authzID      string
	dn, pass     string // simple bind; empty dn: stay anonymous
}

// connect dials the targets in order and returns the first connection that
// is set up and bound, whether it runs TLS, and the index of its target.
func (d *dialer) connect(ctx context.Context, b *binder) (net.Conn, bool, int, error) {
	var errs []error
	for _, i := range d.order() {
		if err := ctx.Err(); err != nil {
			return nil, false, 0, err
		}
		c, isTLS, err := d.connectOne(ctx, i, b)
		if err == nil {
			d.markUp(i)
			return c, isTLS, i, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			// The caller gave up (or its deadline was shorter than the
			// server's answer): not the server's fault, so it is not
			// marked down, which would move traffic off a healthy
			// preferred server.
			return nil, false, 0, fmt.Errorf("ldap %s: %w (%v)", d.targets[i].uri, cerr, err)
		}
		var le *goldap.Error
		if errors.As(err, &le) && le.ResultCode < 200 && !serverUnwilling(le.ResultCode) {
			// The server answered and refused the session (wrong dnpass,
			// an ACL, StartTLS not offered): another replica would most
			// likely refuse it too, and marking this one down would only
			// hide the real problem.
			return nil, false, 0, fmt.Errorf("ldap %s: %w", d.targets[i].uri, err)
		}
		d.markDown(i, err)
		errs = append(errs, fmt.Errorf("%s: %w", d.targets[i].uri, err))
	}
	return nil, false, 0, fmt.Errorf("ldap: no server reachable: %w", errors.Join(errs...))
}

func (d *dialer) connectOne(ctx context.Context, i int, b *binder) (net.Conn, bool, error) {
	t := d.targets[i]
	dctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(dctx, t.network, t.addr)
	if err != nil {
		return nil, false, goldap.NewError(goldap.ErrorNetwork, err)
	}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()
	conn := rawsock.Wrap(raw)
	if dl, has := dctx.Deadline(); has {
		_ = conn.SetDeadline(dl)
	}
	// The raw exchanges below only watch the deadline; a cancelled
	// context ends them by moving it to now.
	stop := context.AfterFunc(dctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()
	isTLS := false
	if t.scheme == "ldaps" {
		tc := tls.Client(conn, d.tlsFor(t))
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, false, goldap.NewError(goldap.ErrorNetwork, fmt.Errorf("TLS handshake: %w", err))
		}
		conn, isTLS = tc, true
	}
	if d.startTLS {
		// StartTLS (RFC 4511 §4.14) is done here rather than with
		// go-ldap's StartTLS so that it honours the context and shares
		// the raw setup with the SASL bind below.
		if err := rawExchange(conn, 1, startTLSRequest(), goldap.ApplicationExtendedResponse); err != nil {
			return nil, false, fmt.Errorf("StartTLS: %w", err)
		}
		tc := tls.Client(conn, d.tlsFor(t))
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, false, goldap.NewError(goldap.ErrorNetwork, fmt.Errorf("TLS handshake after StartTLS: %w", err))
		}
		conn, isTLS = tc, true
	}
	if b != nil && b.saslExternal {
		// go-ldap's ExternalBind cannot send an authorization identity,
		// so the SASL EXTERNAL bind (RFC 4422 appendix A) is sent raw:
		// its only credential is the optional authzid.
		if err := rawExchange(conn, 2, saslExternalRequest(b.authzID), goldap.ApplicationBindResponse); err != nil {
			return nil, false, fmt.Errorf("SASL EXTERNAL bind: %w", err)
		}
	}
	if b != nil && !b.saslExternal && b.dn != "" {
		if err := rawExchange(conn, 3, simpleBindRequest(b.dn, b.pass), goldap.ApplicationBindResponse); err != nil {
			return nil, false, fmt.Errorf("service bind as %s: %w", b.dn, err)
		}
	}
	if !stop() {
		// Cancelled just now: the deadline may already have been moved.
		return nil, false, goldap.NewError(goldap.ErrorNetwork, dctx.Err())
	}
	_ = conn.SetDeadline(time.Time{})
	ok = true
	return conn, isTLS, nil
}

func (d *dialer) tlsFor(t target) *tls.Config {
	c := d.tls.Clone()
	if c.ServerName == "" {
		c.ServerName = t.host
	}
	return c
}

func startTLSRequest() *ber.Packet {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, goldap.ApplicationExtendedRequest, nil, "Start TLS")
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, "1.3.6.1.4.1.1466.20037", "TLS Extended Command"))
	return req
}

func simpleBindRequest(dn, pass string) *ber.Packet {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, goldap.ApplicationBindRequest, nil, "Bind Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, "User Name"))
	req.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, pass, "Password"))
	return req
}

func saslExternalRequest(authzID string) *ber.Packet {
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, goldap.ApplicationBindRequest, nil, "Bind Request")
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "User Name"))
	auth := ber.Encode(ber.ClassContext, ber.TypeConstructed, 3, "", "authentication")
	auth.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "EXTERNAL", "SASL Mech"))
	auth.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, authzID, "SASL Cred"))
	req.AppendChild(auth)
	return req
}

// rawExchange sends one request with message id id on a connection no
// go-ldap Conn owns yet and checks that the reply is a successful
// response of type wantOp. The caller has set a deadline on conn.
func rawExchange(conn net.Conn, id int64, op *ber.Packet, wantOp ber.Tag) error {
	// Unbuffered: ber.ReadPacket reads exactly one element, so nothing
	// that follows (the TLS handshake) is consumed by mistake.
	resp, err := rawRoundTrip(conn, conn, id, op)
	if err != nil {
		return err
	}
	gotID, ok := resp.Children[0].Value.(int64)
	if !ok || gotID != id || resp.Children[1].Tag != wantOp {
		// A notice of disconnection (id 0) or a reply to something else.
		if lerr := goldap.GetLDAPError(resp); lerr != nil {
			return lerr
		}
		return goldap.NewError(goldap.ErrorUnexpectedResponse, fmt.Errorf("unexpected response (id %v, op %d)", resp.Children[0].Value, resp.Children[1].Tag))
	}
	return goldap.GetLDAPError(resp)
}

// rawRoundTrip sends one request with message id id on w and reads one
// message back from r, which has at least an id and an operation.
func rawRoundTrip(w io.Writer, r io.Reader, id int64, op *ber.Packet) (*ber.Packet, error) {
	env := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	env.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "MessageID"))
	env.AppendChild(op)
	if _, err := w.Write(env.Bytes()); err != nil {
		return nil, goldap.NewError(goldap.ErrorNetwork, err)
	}
	resp, err := ber.ReadPacket(r)
	if err != nil {
		return nil, goldap.NewError(goldap.ErrorNetwork, err)
	}
	if len(resp.Children) < 2 {
		return nil, goldap.NewError(goldap.ErrorUnexpectedResponse, errors.New("malformed response"))
	}
	return resp, nil
}

// runOp runs fn on c with a timeout: the context's deadline or limit,
// whichever comes first. A cancelled context closes the connection, which
// ends fn at once; the caller must then discard c.
func runOp(ctx context.Context, c *goldap.Conn, limit time.Duration, fn func(*goldap.Conn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := limit
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 {
		return context.DeadlineExceeded
	}
	c.SetTimeout(timeout)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err := fn(c)
	if !stop() {
		// The context ended while fn ran and the connection was closed
		// under it: whatever fn returned, the answer is the context's.
		if err != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
	return err
}

// serverUnwilling reports result codes that say this server cannot serve
// now (busy, unavailable — also what a Notice of Disconnection carries —,
// or an internal error) rather than that the session is refused: the next
// server is tried, as for a network error.
func serverUnwilling(code uint16) bool {
	return code == goldap.LDAPResultBusy || code == goldap.LDAPResultUnavailable || code == goldap.LDAPResultOther
}

// serverAnswered reports whether err is an LDAP result sent by the server
// (as opposed to a network error, a timeout or a client-side problem).
func serverAnswered(err error) bool {
	var le *goldap.Error
	return errors.As(err, &le) && le.ResultCode < 200 && le.ResultCode != 0
}

// healthyAfter reports whether a connection can be reused after an
// operation that returned err.
func healthyAfter(err error) bool {
	if err == nil {
		return true
	}
	var le *goldap.Error
	if !errors.As(err, &le) {
		return false
	}
	switch le.ResultCode {
	case goldap.ErrorFilterCompile, goldap.ErrorFilterDecompile, goldap.ErrorEmptyPassword:
		// Refused by go-ldap before anything was sent.
		return true
	}
	if le.ResultCode >= 200 {
		return false
	}
	switch le.ResultCode {
	case goldap.LDAPResultOperationsError, goldap.LDAPResultProtocolError,
		goldap.LDAPResultBusy, goldap.LDAPResultUnavailable, goldap.LDAPResultOther:
		// The server may be shutting down or the session is confused.
		return false
	}
	return true
}

// pool is a bounded set of connections, each used by one operation at a
// time. Two pools exist: the service pool (bound as dn/dnpass or SASL,
// used for listings) and, with auth_bind, the auth pool, whose
// connections only ever carry user binds, so a user's identity never
// leaks into a search; the auth pool's connections are bare sockets
// (rawbind.go). Lookups have a pool of their own (mux.go).
type pool struct {
	d     *dialer
	bind  *binder
	slots chan struct{} // one token per connection in use or being made
	// raw: the connections are bare sockets, for binds only (rawbind.go),
	// not go-ldap connections.
	raw bool

	mu     sync.Mutex
	idle   []*pconn
	gen    uint64 // bumped on a network error: older idle connections are suspect
	closed bool
}

type pconn struct {
	c      *goldap.Conn  // nil in a raw pool
	nc     net.Conn      // a raw pool's socket
	br     *bufio.Reader // and its reader: ber.ReadPacket reads a few bytes at a time
	lastID int64         // a raw pool's last message id
	broken bool          // a raw pool's socket failed
	target int
	born   time.Time
	gen    uint64
}

// closing reports whether pc is no longer usable.
func (pc *pconn) closing() bool {
	if pc.c == nil {
		return pc.broken
	}
	return pc.c.IsClosing()
}

func (pc *pconn) close() {
	if pc.c == nil {
		pc.nc.Close()
		return
	}
	pc.c.Close()
}

func newPool(d *dialer, b *binder, size int) *pool {
	return &pool{d: d, bind: b, slots: make(chan struct{}, size)}
}

var errClosed = errors.New("ldap: database closed")

// acquire returns a connection for exclusive use and whether it was
// dialled for this call (fresh) rather than reused.
func (p *pool) acquire(ctx context.Context) (*pconn, bool, error) {
	// Check first: select picks at random among ready cases, and a
	// cancelled request must not start work.
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			<-p.slots
			return nil, false, errClosed
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		pc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		stale := pc.gen != p.gen
		p.mu.Unlock()
		if stale || pc.closing() || p.retire(pc) {
			pc.close()
			continue
		}
		return pc, false, nil
	}
	raw, isTLS, t, err := p.d.connect(ctx, p.bind)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	p.mu.Lock()
	gen := p.gen
	p.mu.Unlock()
	pc := &pconn{target: t, born: time.Now(), gen: gen}
	// Message ids 1 to 3 used while connecting belong to completed
	// operations; RFC 4511 §4.1.1.1 only forbids reusing ids of operations
	// in progress, so go-ldap (and a raw pool) may start again from 1.
	if p.raw {
		pc.nc, pc.br = raw, bufio.NewReaderSize(raw, 512)
	} else {
		pc.c = goldap.NewConn(raw, isTLS)
		pc.c.Start()
	}
	return pc, true, nil
}

// retire reports whether pc should be replaced by a new connection:
// connections to a fallback server are kept for at most the failback
// interval, so that the preferred server is used again once it is back.
func (p *pool) retire(pc *pconn) bool {
	return pc.target > 0 && time.Since(pc.born) > p.d.failback && !p.d.isDown(0)
}

// release returns pc to the pool, or closes it when it is not healthy.
// suspect says the failure was the server's or the network's (not the
// caller's cancellation): other idle connections to the server probably
// died with this one (a restart), so they are not handed out again.
func (p *pool) release(pc *pconn, healthy, suspect bool) {
	defer func() { <-p.slots }()
	p.mu.Lock()
	if suspect {
		p.gen++
	}
	if healthy && !p.closed && !pc.closing() && pc.gen == p.gen {
		p.idle = append(p.idle, pc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	pc.close()
}

// do runs run on a pooled connection. A network failure on a reused
// connection is retried once on a new one: an idle connection may have
// been cut by a server restart without anyone noticing yet, and searches
// and binds are safe to repeat. A timeout is not retried.
func (p *pool) do(ctx context.Context, run func(*pconn) error) error {
	for attempt := 0; ; attempt++ {
		pc, fresh, err := p.acquire(ctx)
		if err != nil {
			return err
		}
		err = run(pc)
		healthy := healthyAfter(err) && ctx.Err() == nil
		p.release(pc, healthy, !healthy && ctx.Err() == nil)
		if healthy || ctx.Err() != nil || fresh || attempt > 0 || isTimeout(err) || serverAnswered(err) {
			return err
		}
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errSearchTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	// go-ldap's own request timeout has no sentinel, only its text.
	return err != nil && strings.Contains(err.Error(), "timed out")
}

// close closes idle connections and makes later acquires fail; connections
// in use are closed when released.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}
