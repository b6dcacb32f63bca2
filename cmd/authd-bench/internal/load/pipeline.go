package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// pipeConn runs pipelined requests over one line-protocol connection (both
// Dovecot protocols): one goroutine reads replies, and for each finished
// request issues the next into the write buffer. The buffer is flushed only
// when no complete reply line is left to process, so replies that arrive
// together are answered with one write, and the generator spends as little
// CPU as possible on the machine it measures.
type pipeConn struct {
	nc      net.Conn
	br      *bufio.Reader
	bw      *bufio.Writer
	line    []byte // scratch for building one request line
	nextID  uint32
	pending map[uint32]*pending
	free    []*pending
	proto   lineProto

	// Open-loop runs only (openloop.go): the pacer sends while this
	// connection's reader reads, so both take mu for everything above but
	// br, which only the reader uses. sending is false once the pacer is
	// done; wake tells a reader waiting for work that there is some, or
	// that there will be none.
	mu      sync.Mutex
	wake    sync.Cond
	sending bool
	broken  error
}

// pending is one request on the wire.
type pending struct {
	id    uint32
	req   Request
	start time.Time
	step  int
	scram *scramClient
}

// lineProto is what differs between the client and master protocols.
type lineProto interface {
	// start appends the request's first line (with LF) to dst.
	start(dst []byte, p *pending) ([]byte, error)
	// reply handles one reply line for p: either p is finished with
	// outcome o, or next is appended to dst as the next line to send.
	reply(dst []byte, cmd, rest []byte, p *pending) (out []byte, finished bool, o Outcome, err error)
}

const ioBufSize = 64 << 10

func newPipeConn(nc net.Conn, proto lineProto) *pipeConn {
	c := &pipeConn{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, ioBufSize),
		bw:      bufio.NewWriterSize(nc, ioBufSize),
		pending: map[uint32]*pending{},
		proto:   proto,
	}
	c.wake.L = &c.mu
	return c
}

func (c *pipeConn) Close() error { return c.nc.Close() }

func dialTarget(ctx context.Context, t Target) (net.Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, t.Network, t.Address)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	return nc, nil
}

// handshake writes hello and reads the server's handshake until step says
// it is complete: step sees each line split at TABs, after the first has
// been checked to be VERSION 1. On success the dial deadline is lifted; on
// failure the connection is closed.
func (c *pipeConn) handshake(hello []byte, step func(f []string, line string) (done bool, err error)) error {
	err := c.handshakeLines(hello, step)
	if err != nil {
		c.nc.Close()
		return err
	}
	_ = c.nc.SetDeadline(time.Time{})
	return nil
}

func (c *pipeConn) handshakeLines(hello []byte, step func(f []string, line string) (bool, error)) error {
	if _, err := c.nc.Write(hello); err != nil {
		return err
	}
	for first := true; ; first = false {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		f := strings.Split(line, "\t")
		if first && (f[0] != "VERSION" || len(f) < 3 || f[1] != "1") {
			return fmt.Errorf("handshake: want VERSION 1, got %.80q", line)
		}
		if done, err := step(f, line); err != nil || done {
			return err
		}
	}
}

// readLine reads one LF-terminated line (without LF or CR) for the
// handshake.
func (c *pipeConn) readLine() (string, error) {
	b, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", errors.New("server line longer than 64 KiB")
		}
		return "", err
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

// issue buffers request r's first line. Its latency counts from sched,
// the time an open-loop schedule meant it to be sent, or from now when
// sched is zero (closed loop).
func (c *pipeConn) issue(r Request, sched time.Time) error {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	var p *pending
	if n := len(c.free); n > 0 {
		p, c.free = c.free[n-1], c.free[:n-1]
		*p = pending{}
	} else {
		p = &pending{}
	}
	p.id, p.req = c.nextID, r
	line, err := c.proto.start(c.line[:0], p)
	c.line = line
	if err != nil {
		return err
	}
	p.start = sched
	if sched.IsZero() {
		p.start = time.Now()
	}
	c.pending[p.id] = p
	_, err = c.bw.Write(line)
	return err
}

func (c *pipeConn) finish(p *pending, o Outcome, w *Worker) {
	delete(c.pending, p.id)
	w.Done(p.req, p.start, o)
	p.scram = nil
	c.free = append(c.free, p)
}

// abort ends every request in flight with outcome o.
func (c *pipeConn) abort(o Outcome, w *Worker) {
	for _, p := range c.pending {
		c.finish(p, o, w)
	}
}

// Run implements Conn.
func (c *pipeConn) Run(depth int, deadline time.Time, w *Worker) error {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return err
	}
	more := true
	for more && len(c.pending) < depth {
		r, ok := w.Next()
		if !ok {
			more = false
			break
		}
		if err := c.issue(r, time.Time{}); err != nil {
			c.abort(OutcomeError, w)
			return err
		}
	}
	if err := c.bw.Flush(); err != nil {
		c.abort(OutcomeError, w)
		return err
	}
	for len(c.pending) > 0 {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return c.readFailed(err, w)
		}
		finished, err := c.onLine(line, w)
		if err != nil {
			return err
		}
		if finished && more {
			r, ok := w.Next()
			if !ok {
				more = false
			} else if err := c.issue(r, time.Time{}); err != nil {
				c.abort(OutcomeError, w)
				return err
			}
		}
		if c.bw.Buffered() > 0 && !c.completeLineBuffered() {
			if err := c.bw.Flush(); err != nil {
				c.abort(OutcomeError, w)
				return err
			}
		}
	}
	return nil
}

// readFailed ends every request in flight after a failed read: as
// unanswered at the deadline, as errors otherwise. It returns the error
// for the run's report.
func (c *pipeConn) readFailed(err error, w *Worker) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		n := len(c.pending)
		c.abort(OutcomeUnanswered, w)
		return fmt.Errorf("%d requests unanswered at the deadline", n)
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		err = errors.New("server line longer than 64 KiB")
	}
	c.abort(OutcomeError, w)
	return err
}

// onLine handles one reply line: it finishes its request (finished), or
// buffers the request's next line (a mechanism's next step). On an error
// every request in flight is ended.
func (c *pipeConn) onLine(line []byte, w *Worker) (finished bool, err error) {
	line = bytes.TrimRight(line, "\r\n")
	cmd, rest, _ := bytes.Cut(line, []byte{'\t'})
	idField, rest, _ := bytes.Cut(rest, []byte{'\t'})
	id, ok := parseUint32(idField)
	p := c.pending[id]
	if !ok || p == nil {
		c.abort(OutcomeError, w)
		return false, fmt.Errorf("unexpected server line %.80q", line)
	}
	out, finished, o, err := c.proto.reply(c.line[:0], cmd, rest, p)
	c.line = out
	if err != nil {
		w.Err(err)
		c.finish(p, OutcomeError, w)
		// The request is dead but the connection state is unclear
		// (the server still owes an answer for this id): stop here.
		c.abort(OutcomeError, w)
		return false, err
	}
	if finished {
		c.finish(p, o, w)
		return true, nil
	}
	if _, err := c.bw.Write(out); err != nil {
		c.abort(OutcomeError, w)
		return false, err
	}
	return false, nil
}

// completeLineBuffered reports whether a whole reply line is already in
// the read buffer, i.e. the next ReadSlice will not block.
func (c *pipeConn) completeLineBuffered() bool {
	n := c.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := c.br.Peek(n)
	return bytes.IndexByte(b, '\n') >= 0
}

func parseUint32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 0xffffffff {
		return 0, false
	}
	return uint32(n), true
}

func appendUint(dst []byte, n uint32) []byte { return strconv.AppendUint(dst, uint64(n), 10) }
