package dovecot

import (
	"context"

	"github.com/authd-project/authd/internal/blocking"
	"sync"
	"sync/atomic"
	"time"
)

// A request step's deadline costs nothing until something waits on it.
//
// Every step is bounded (Limits.Request): its context ends at the
// deadline, and the client hears "try again" then even when the step has
// not returned. Two timers per step (context.WithTimeout and the overdue
// answer) and the cancel context's registration with the connection's
// were ≈10 % of a cached PLAIN login's CPU, while most steps (a
// passwd-file or a cached lookup) never wait on their context at all.
// So a step gets a stepContext, which makes the real context (and its
// timer) only when something calls Done, and one sweeper per server
// answers the steps that outlive their deadline (overdueSweeper).

// stepContext is a step's context: its deadline and its connection's
// cancellation, without a timer of its own until Done is called.
type stepContext struct {
	parent   context.Context
	deadline time.Time

	mu      sync.Mutex
	real    atomic.Pointer[context.Context] // made by Done, AfterFunc
	cancel  context.CancelFunc
	expired atomic.Bool // set by the sweeper at the deadline

	// reader is the connection whose reader runs the step (client.go,
	// step); nil on a worker. Before the step first waits, the reader
	// hands its role on, so that the connection's other requests are
	// read meanwhile. relayed is set once: by the hand-over, or by the
	// reader when the step ended without one (no hand-over after that).
	reader  *clientConn
	relayed atomic.Bool
}

// WillBlock implements blocking.Hook: a step on the reader hands the
// reading role on before it waits.
func (c *stepContext) WillBlock() {
	if c.reader != nil && !c.relayed.Load() && c.relayed.CompareAndSwap(false, true) {
		c.reader.relay()
	}
}

func newStepContext(parent context.Context, deadline time.Time) *stepContext {
	c := new(stepContext)
	c.init(parent, deadline)
	return c
}

// init readies a zero stepContext kept inside something else.
func (c *stepContext) init(parent context.Context, deadline time.Time) {
	c.parent, c.deadline = parent, deadline
}

func (c *stepContext) Deadline() (time.Time, bool) { return c.deadline, true }

// Done makes the real context: a caller that waits needs a timer. A
// caller that waits is also one the reader must not wait for.
func (c *stepContext) Done() <-chan struct{} {
	c.WillBlock()
	return c.materialize().Done()
}

// Err is the real context's error once it exists; before, the
// sweeper's mark or the connection's end. Err and Done agree: a real
// context made after either is already done, with the same error.
func (c *stepContext) Err() error {
	if r := c.real.Load(); r != nil {
		return (*r).Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

// Value answers from the real context once it exists, so that contexts
// derived from this one register with it (context's own bookkeeping
// finds the cancel context through Value) instead of starting a
// goroutine each to watch it.
func (c *stepContext) Value(key any) any {
	if _, ok := key.(blocking.Key); ok {
		if c.reader == nil {
			return nil
		}
		return c
	}
	if r := c.real.Load(); r != nil {
		return (*r).Value(key)
	}
	return c.parent.Value(key)
}

// AfterFunc lets context.AfterFunc and derived contexts hook the real
// context directly.
func (c *stepContext) AfterFunc(f func()) func() bool {
	c.WillBlock()
	return context.AfterFunc(c.materialize(), f)
}

func (c *stepContext) materialize() context.Context {
	if r := c.real.Load(); r != nil {
		return *r
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.real.Load(); r != nil {
		return *r
	}
	// A past deadline makes a context that is done already.
	r, cancel := context.WithDeadline(c.parent, c.deadline)
	c.cancel = cancel
	c.real.Store(&r)
	return r
}

// expire marks the deadline passed for a context nobody waits on; a real
// context has its own timer.
func (c *stepContext) expire() { c.expired.Store(true) }

// release frees the real context's timer when the step is over.
func (c *stepContext) release() {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// sweepInterval is how often the sweeper looks for overdue steps: a
// sixteenth of the deadline, so that an overdue answer comes at most
// about 6 % late, but at least every 250 ms and at most 1000 times a
// second.
func sweepInterval(deadline time.Duration) time.Duration {
	return min(max(deadline/16, time.Millisecond), 250*time.Millisecond)
}

// overdueSweeper answers, until ctx ends, every running step whose
// deadline has passed with a temporary failure (finishOverdue), and
// marks its context expired.
func (s *ClientServer) overdueSweeper(ctx context.Context) {
	t := time.NewTicker(sweepInterval(s.limits.Request))
	defer t.Stop()
	var conns []*clientConn
	var late []*clientReq
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			conns = conns[:0]
			for c := range s.conns {
				conns = append(conns, c)
			}
			s.mu.Unlock()
			for _, c := range conns {
				late = c.overdueSteps(now, late[:0])
				for _, req := range late {
					c.finishOverdue(req)
				}
			}
			clear(late)
			clear(conns)
		}
	}
}

// overdueSteps appends the connection's running steps that are past their
// deadline at now, and marks their contexts expired.
func (c *clientConn) overdueSteps(now time.Time, late []*clientReq) []*clientReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, req := range c.pending {
		if req.running && req.sctx != nil && req.sctx.reader != nil &&
			now.Sub(req.sctx.deadline.Add(-c.s.limits.Request)) >= sweepInterval(c.s.limits.Request) {
			// A step on the reader that has run for a sweep already waits
			// in a way nobody announced: the reader goes on elsewhere.
			req.sctx.WillBlock()
		}
		if req.running && req.sctx != nil && !now.Before(req.sctx.deadline) {
			req.sctx.expire()
			late = append(late, req)
		}
	}
	return late
}
