package ldap

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/authd-project/authd/internal/yield"
)

// Lookups (pass_filter, user_filter) are the hot path of an LDAP passdb:
// one search per login. They run on the connections of a lookupPool, each
// carrying many searches at once, told apart by message id (RFC 4511
// §4.1.1.1), as Dovecot does on its single connection. Requests that
// arrive together leave in one write, the replies are parsed by one
// reader per connection straight from its buffer, and the caller waits
// for its own reply only. go-ldap, used for binds and listings, runs one
// operation per call through two goroutines and a packet tree per
// message; on the reference machine that cost more CPU per login than
// slapd itself (docs/performance.md).

// muxConn is one service connection of the lookup pool.
type muxConn struct {
	nc      net.Conn
	target  int
	born    time.Time
	timeout time.Duration // write deadline: a server that stops reading

	wmu     sync.Mutex
	wbuf    []byte // requests not yet written
	spare   []byte // the other write buffer, reused
	writing bool   // a caller is writing wbuf; others only append

	mu       sync.Mutex
	nextID   int32
	pending  map[int32]*call
	err      error // set once: the connection is dead
	draining bool  // retired: close once nothing is pending
	inflight atomic.Int32

	done chan struct{} // closed when the reader has stopped
}

// call is one search in flight. Until its reply is complete it belongs to
// the reader; done hands it back to the caller.
type call struct {
	id      int32
	entries []*entry
	code    uint16 // resultCode of SearchResultDone
	matched string
	diag    string
	err     error // the connection failed before the reply was complete
	done    chan struct{}
	req     berWriter
	timer   *time.Timer
}

// Calls are pooled with their timer, channel and request buffer. Reusing
// the timer is safe because since Go 1.23 (go.mod says 1.26) Stop and
// Reset discard a pending tick; GODEBUG=asynctimerchan=1 would bring back
// stale ticks and must not be set for authd.
var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan struct{}, 1), timer: t}
}}

func getCall() *call {
	return callPool.Get().(*call)
}

// putCall returns c to the pool. Every path through searchOn receives the
// one done signal of each registration before it gets here, so done is
// empty; the check is a safety net, because a stale signal would hand the
// next user of c someone else's reply.
func putCall(c *call) {
	c.timer.Stop()
	select {
	case <-c.done:
	default:
	}
	clear(c.entries)
	c.entries, c.code, c.matched, c.diag, c.err = c.entries[:0], 0, "", "", nil
	if cap(c.req.b) > 64<<10 {
		c.req.b = nil
	}
	callPool.Put(c)
}

func newMuxConn(nc net.Conn, target int, timeout time.Duration) *muxConn {
	c := &muxConn{
		nc:      nc,
		target:  target,
		born:    time.Now(),
		timeout: timeout,
		nextID:  4, // 1 to 3 were used while connecting (pool.go)
		pending: make(map[int32]*call),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// alive reports whether new searches may be started on c.
func (c *muxConn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil && !c.draining
}

// register assigns call a message id and makes it wait for its reply.
func (c *muxConn) register(cl *call) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	cl.id = c.newIDLocked()
	c.pending[cl.id] = cl
	c.inflight.Add(1)
	return nil
}

// newIDLocked returns a message id no search in progress uses (RFC 4511
// §4.1.1.1), wrapping from 2³¹-1 to 1.
func (c *muxConn) newIDLocked() int32 {
	for {
		id := c.nextID
		c.nextID++
		if c.nextID <= 0 {
			c.nextID = 1
		}
		if _, busy := c.pending[id]; !busy {
			return id
		}
	}
}

// forget takes call back from the reader before its reply came (the
// caller gave up). It reports false when the reader already finished it,
// in which case done is about to be (or has been) signalled.
func (c *muxConn) forget(cl *call) bool {
	c.mu.Lock()
	if c.pending[cl.id] != cl {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, cl.id)
	c.inflight.Add(-1)
	closeNow := c.drainedLocked()
	c.mu.Unlock()
	if closeNow {
		c.nc.Close()
	}
	return true
}

// send queues an encoded request. Callers that arrive while another is
// writing leave their bytes for it: under load many requests share one
// write() instead of one system call each.
func (c *muxConn) send(b []byte) {
	c.wmu.Lock()
	c.wbuf = append(c.wbuf, b...)
	if c.writing {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	c.wmu.Unlock()
	// One yield before writing lets requests that are being prepared on
	// the other workers at this moment join this write (the client socket
	// does the same for replies): fewer write() calls to the server. Only
	// when this connection has other requests in flight, though: alone,
	// nothing is likely to join, and the yield would only put the write
	// behind every runnable goroutine. Nor when no goroutine waits to run
	// (package yield).
	if c.inflight.Load() > 1 {
		yield.Others()
	}
	c.wmu.Lock()
	for len(c.wbuf) > 0 {
		buf := c.wbuf
		c.wbuf = c.spare[:0]
		c.wmu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		c.spare = buf
		if cap(buf) > 64<<10 {
			c.spare = nil // do not keep a burst's buffer for the connection's life
		}
		if err != nil {
			c.wbuf = c.wbuf[:0]
			c.writing = false
			c.wmu.Unlock()
			c.fail(goldap.NewError(goldap.ErrorNetwork, fmt.Errorf("write: %w", err)))
			return
		}
	}
	c.writing = false
	c.wmu.Unlock()
}

// fail marks c dead with err, closes it and hands every pending call back
// with the error. Only the first error counts.
func (c *muxConn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = make(map[int32]*call)
	c.inflight.Store(0)
	c.mu.Unlock()
	c.nc.Close()
	for _, cl := range pending {
		cl.err = err
		cl.done <- struct{}{}
	}
}

// drain retires c: no new searches; it closes once the last reply is in.
func (c *muxConn) drain() {
	c.mu.Lock()
	c.draining = true
	closeNow := c.drainedLocked()
	c.mu.Unlock()
	if closeNow {
		c.nc.Close()
	}
}

// drainedLocked marks a retired connection with nothing pending as done;
// the caller then closes it, outside c.mu (closing a TLS connection
// writes, and pick holds the pool's lock while it asks alive).
func (c *muxConn) drainedLocked() bool {
	if c.draining && len(c.pending) == 0 && c.err == nil {
		c.err = goldap.NewError(goldap.ErrorNetwork, errors.New("connection retired"))
		return true
	}
	return false
}

// abandon asks the server to stop working on id (RFC 4511 §4.11); there
// is no reply.
func (c *muxConn) abandon(id int32) {
	var w berWriter
	c.mu.Lock()
	aid := c.newIDLocked()
	dead := c.err != nil
	c.mu.Unlock()
	if dead {
		return
	}
	w.begin(tagSequence)
	w.integer(tagInteger, int64(aid))
	w.integer(berApplication|16, int64(id))
	w.end()
	c.send(w.b)
}

// maxMessage bounds one reply: a lookup returns at most two entries of a
// few attributes, and a listing does not use this path.
const maxMessage = 4 << 20

// readLoop reads replies until the connection fails or is closed, and
// completes each call when its SearchResultDone arrives.
func (c *muxConn) readLoop() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.nc, 16<<10)
	var msg []byte
	for {
		var err error
		msg, err = readMessage(br, msg[:0])
		if err == nil {
			err = c.dispatch(msg)
		}
		if err != nil {
			c.fail(goldap.NewError(goldap.ErrorNetwork, err))
			return
		}
		if cap(msg) > 64<<10 {
			msg = nil // do not keep an unusually large buffer
		}
	}
}

// readMessage appends one complete BER element (an LDAPMessage) from br to
// buf.
func readMessage(br *bufio.Reader, buf []byte) ([]byte, error) {
	hdr, err := br.Peek(2)
	if err != nil {
		return buf, err
	}
	if hdr[0] != tagSequence {
		return buf, fmt.Errorf("%w: message starts with 0x%02x", errBER, hdr[0])
	}
	hl := 2
	if hdr[1] >= 0x80 {
		hl += int(hdr[1] & 0x7f)
		if hl > 6 {
			return buf, fmt.Errorf("%w: message length of %d octets", errBER, hl-2)
		}
		if hdr, err = br.Peek(hl); err != nil {
			return buf, err
		}
	}
	n, _, err := berLength(hdr[1:hl])
	if err != nil {
		return buf, err
	}
	if n > maxMessage {
		return buf, fmt.Errorf("reply of %d bytes exceeds %d", n, maxMessage)
	}
	total := hl + n
	if cap(buf) < total {
		buf = make([]byte, 0, total)
	}
	buf = buf[:total]
	if _, err := io.ReadFull(br, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}

// LDAP application tags of the replies a search gets.
const (
	opSearchEntry     = berApplication | berConstructed | 4
	opSearchDone      = berApplication | berConstructed | 5
	opSearchReference = berApplication | berConstructed | 19
	opExtendedResp    = berApplication | berConstructed | 24
)

// dispatch handles one LDAPMessage. An error means the stream cannot be
// trusted any more.
func (c *muxConn) dispatch(msg []byte) error {
	r := berReader{b: msg}
	body, err := r.expect(tagSequence)
	if err != nil {
		return err
	}
	r = berReader{b: body}
	idb, err := r.expect(tagInteger)
	if err != nil {
		return err
	}
	id64, err := berInt(idb)
	if err != nil {
		return err
	}
	op, content, err := r.next()
	if err != nil {
		return err
	}
	if id64 == 0 {
		// An unsolicited notification: in practice the Notice of
		// Disconnection (RFC 4511 §4.4.1), after which the server closes.
		code, _, diag, perr := parseResult(content)
		if perr != nil {
			return perr
		}
		return goldap.NewError(code, fmt.Errorf("server notice: %s", diag))
	}
	if id64 < 0 || id64 > 1<<31-1 {
		return fmt.Errorf("%w: message id %d out of range", errBER, id64)
	}
	id := int32(id64)
	// The reply is parsed before the call is looked up: the caller may
	// forget its call at any moment (and reuse it), so the call is only
	// touched under c.mu while it is still pending.
	switch op {
	case opSearchEntry:
		e, err := parseEntry(content)
		if err != nil {
			return err
		}
		c.mu.Lock()
		if cl := c.pending[id]; cl != nil && len(cl.entries) < searchSizeLimit {
			cl.entries = append(cl.entries, e)
		}
		c.mu.Unlock()
		return nil
	case opSearchReference:
		// Referrals are not followed, as in Dovecot's lookups.
		return nil
	case opSearchDone:
		code, matched, diag, err := parseResult(content)
		if err != nil {
			return err
		}
		c.mu.Lock()
		cl := c.pending[id]
		if cl == nil {
			// A reply to a search the caller gave up on (the abandon
			// crossed it).
			c.mu.Unlock()
			return nil
		}
		cl.code, cl.matched, cl.diag = code, matched, diag
		delete(c.pending, id)
		c.inflight.Add(-1)
		closeNow := c.drainedLocked()
		c.mu.Unlock()
		cl.done <- struct{}{}
		if closeNow {
			c.nc.Close()
		}
		return nil
	}
	c.mu.Lock()
	known := c.pending[id] != nil
	c.mu.Unlock()
	if !known {
		return nil
	}
	return fmt.Errorf("%w: unexpected reply 0x%02x to a search", errBER, op)
}

// parseResult reads the start of an LDAPResult: resultCode, matchedDN,
// diagnosticMessage (the referral and anything after are not needed).
func parseResult(content []byte) (code uint16, matched, diag string, err error) {
	r := berReader{b: content}
	cb, err := r.expect(tagEnumerated)
	if err != nil {
		return 0, "", "", err
	}
	v, err := berInt(cb)
	if err != nil || v < 0 || v > 0xffff {
		return 0, "", "", fmt.Errorf("%w: resultCode", errBER)
	}
	m, err := r.expect(tagOctets)
	if err != nil {
		return 0, "", "", err
	}
	d, err := r.expect(tagOctets)
	if err != nil {
		return 0, "", "", err
	}
	return uint16(v), string(m), string(d), nil
}

// parseEntry reads a SearchResultEntry: the DN and every attribute's
// values, keyed by lower-case name.
func parseEntry(content []byte) (*entry, error) {
	r := berReader{b: content}
	dn, err := r.expect(tagOctets)
	if err != nil {
		return nil, err
	}
	list, err := r.expect(tagSequence)
	if err != nil {
		return nil, err
	}
	e := &entry{dn: string(dn), attrs: make(map[string][]string, 4)}
	attrs := berReader{b: list}
	for !attrs.empty() {
		pa, err := attrs.expect(tagSequence)
		if err != nil {
			return nil, err
		}
		ar := berReader{b: pa}
		name, err := ar.expect(tagOctets)
		if err != nil {
			return nil, err
		}
		set, err := ar.expect(tagSet)
		if err != nil {
			return nil, err
		}
		key := strings.ToLower(string(name))
		vals := e.attrs[key]
		vr := berReader{b: set}
		for !vr.empty() {
			v, err := vr.expect(tagOctets)
			if err != nil {
				return nil, err
			}
			vals = append(vals, string(v))
		}
		e.attrs[key] = vals
	}
	return e, nil
}

// appendSearch encodes a SearchRequest (RFC 4511 §4.5.1) with message id
// id, no time limit and no controls.
func appendSearch(w *berWriter, id int32, base string, scope, deref, sizeLimit int, filter string, attrs []string) error {
	w.begin(tagSequence)
	w.integer(tagInteger, int64(id))
	w.begin(berApplication | berConstructed | 3)
	w.octets(tagOctets, base)
	w.integer(tagEnumerated, int64(scope))
	w.integer(tagEnumerated, int64(deref))
	w.integer(tagInteger, int64(sizeLimit))
	w.integer(tagInteger, 0)
	w.boolean(tagBoolean, false)
	if err := appendFilter(w, filter); err != nil {
		return err
	}
	w.begin(tagSequence)
	for _, a := range attrs {
		w.octets(tagOctets, a)
	}
	w.end()
	w.end()
	w.end()
	return nil
}

// searchResult is what a lookup needs from a search: at most
// searchSizeLimit entries, and the result as go-ldap would report it.
type searchResult struct {
	entries []*entry
	err     error // *goldap.Error for a result other than success
	// answered: err is the search's own result code (SearchResultDone),
	// not a failure to connect or bind, whose codes mean something else.
	answered bool
}

// lookupPool holds up to size multiplexed connections for lookups. A
// search goes to the live connection with the fewest searches in flight;
// a new connection is made when every live one is busy and the pool is
// not full. Dead connections (their reader saw an error) are dropped on
// the next search. As in the other pool, connections to a fallback
// server are retired after the failback interval once the first server
// is back.
type lookupPool struct {
	d    *dialer
	bind *binder
	size int

	mu      sync.Mutex
	conns   []*muxConn
	retired []*muxConn // dead or draining, until their reader has stopped
	dialing int
	wake    chan struct{} // closed and replaced when a dial ends
	closed  bool
}

func newLookupPool(d *dialer, b *binder, size int) *lookupPool {
	return &lookupPool{d: d, bind: b, size: size, wake: make(chan struct{})}
}

// pick returns a connection to search on and whether it was made for this
// call.
func (p *lookupPool) pick(ctx context.Context) (*muxConn, bool, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, errClosed
		}
		var best *muxConn
		bestN := int32(0)
		live := p.conns[:0]
		for _, c := range p.conns {
			if !c.alive() {
				p.retire(c)
				continue
			}
			if c.target > 0 && time.Since(c.born) > p.d.failback && !p.d.isDown(0) {
				c.drain()
				p.retire(c)
				continue
			}
			live = append(live, c)
			if n := c.inflight.Load(); best == nil || n < bestN {
				best, bestN = c, n
			}
		}
		clear(p.conns[len(live):])
		p.conns = live
		if best != nil && (bestN == 0 || len(p.conns)+p.dialing >= p.size) {
			p.mu.Unlock()
			return best, false, nil
		}
		if len(p.conns)+p.dialing < p.size {
			p.dialing++
			p.mu.Unlock()
			c, err := p.dial(ctx)
			if err != nil && best != nil {
				// Busy connections are still better than none.
				return best, false, nil
			}
			return c, true, err
		}
		// Nothing live and every slot is dialling: wait for one.
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
}

// retire keeps c, which takes no new searches, where close finds it
// until its reader has stopped. p.mu is held.
func (p *lookupPool) retire(c *muxConn) {
	kept := p.retired[:0]
	for _, r := range p.retired {
		select {
		case <-r.done:
		default:
			kept = append(kept, r)
		}
	}
	clear(p.retired[len(kept):])
	p.retired = append(kept, c)
}

func (p *lookupPool) dial(ctx context.Context) (*muxConn, error) {
	raw, _, t, err := p.d.connect(ctx, p.bind)
	var c *muxConn
	if err == nil {
		c = newMuxConn(raw, t, p.d.timeout)
	}
	p.mu.Lock()
	p.dialing--
	close(p.wake)
	p.wake = make(chan struct{})
	if c != nil {
		if p.closed {
			p.mu.Unlock()
			c.fail(errClosed)
			<-c.done
			return nil, errClosed
		}
		p.conns = append(p.conns, c)
	}
	p.mu.Unlock()
	return c, err
}

// search runs one lookup search. A network failure on a connection that
// was already in use is retried once on another: the server may have
// restarted, and a search is safe to repeat. A timeout is not retried.
func (p *lookupPool) search(ctx context.Context, base string, scope, deref int, filter string, attrs []string) searchResult {
	for attempt := 0; ; attempt++ {
		c, fresh, err := p.pick(ctx)
		if err != nil {
			return searchResult{err: err}
		}
		res, netErr := p.searchOn(ctx, c, base, scope, deref, filter, attrs)
		if !netErr || fresh || attempt > 0 || ctx.Err() != nil || isTimeout(res.err) {
			return res
		}
	}
}

// errSearchTimeout is the error of a search the server did not answer
// within authd_timeout; errors.Is finds it, and it is never retried.
var errSearchTimeout = errors.New("no answer within authd_timeout")

// searchOn runs the search on c; netErr says the connection failed.
func (p *lookupPool) searchOn(ctx context.Context, c *muxConn, base string, scope, deref int, filter string, attrs []string) (searchResult, bool) {
	if err := ctx.Err(); err != nil {
		return searchResult{err: err}, false
	}
	cl := getCall()
	defer putCall(cl)
	if err := c.register(cl); err != nil {
		return searchResult{err: err}, true
	}
	cl.req.b, cl.req.stack = cl.req.b[:0], cl.req.stack[:0]
	if err := appendSearch(&cl.req, cl.id, base, scope, deref, searchSizeLimit, filter, attrs); err != nil {
		// A filter that only fails for some request values (an escape
		// completed by a variable that was empty). If the connection
		// failed meanwhile, the reader already signalled: take it.
		if !c.forget(cl) {
			<-cl.done
		}
		return searchResult{err: err}, false
	}
	// The reply must come within authd_timeout, or sooner if the request's
	// own deadline says so (then it is the request's context that ends).
	// The clock starts before send: a caller that writes for others (see
	// send) still gets its answer, or its error, in time.
	cl.timer.Reset(p.d.timeout)
	c.send(cl.req.b)
	select {
	case <-cl.done:
	case <-ctx.Done():
		if c.forget(cl) {
			c.abandon(cl.id)
			return searchResult{err: ctx.Err()}, false
		}
		<-cl.done
	case <-cl.timer.C:
		if c.forget(cl) {
			// A server that does not answer a lookup within the timeout
			// is hanging: the connection goes, as in the other pools. The
			// searches that shared it fail with a network error of their
			// own, which search retries once on another connection.
			c.fail(goldap.NewError(goldap.ErrorNetwork,
				fmt.Errorf("connection dropped: another search on it got no answer within %v", p.d.timeout)))
			return searchResult{err: goldap.NewError(goldap.ErrorNetwork, fmt.Errorf("search: %w (%v)", errSearchTimeout, p.d.timeout))}, false
		}
		<-cl.done
	}
	if cl.err != nil {
		return searchResult{err: cl.err}, true
	}
	res := searchResult{entries: append([]*entry(nil), cl.entries...), answered: true}
	if cl.code != goldap.LDAPResultSuccess {
		res.err = &goldap.Error{ResultCode: cl.code, MatchedDN: cl.matched, Err: errors.New(cl.diag)}
	}
	return res, false
}

// close fails every connection, the retired ones included (searches in
// flight end with errClosed), and waits for their readers.
func (p *lookupPool) close() {
	p.mu.Lock()
	p.closed = true
	conns := append(p.conns, p.retired...)
	p.conns, p.retired = nil, nil
	p.mu.Unlock()
	for _, c := range conns {
		c.fail(errClosed)
		<-c.done
	}
}
