package load

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// Open-loop load (Config.Rate): requests are sent on a fixed schedule,
// Rate per second in all, the k-th at start + k/Rate on connection k mod
// Conns, whether or not earlier ones have been answered — as independent
// clients arrive at a login service. Each latency counts from the
// request's scheduled time, not from when it was written: if the
// generator falls behind (descheduled, garbage-collecting) or the server
// stalls, the requests that should have gone out meanwhile carry the
// wait too. A closed loop, which sends only when an answer frees a slot,
// would leave those requests out and report a stall as one slow request
// (coordinated omission).
//
// On Linux the schedule and every connection's replies are one event
// loop on a locked OS thread (loop_linux.go). Elsewhere the schedule is
// kept by one pacer goroutine on a locked OS thread that sleeps with the
// kernel's timer (pace_linux.go has the Linux variant), and each
// connection has a reader goroutine of its own. Either way the Go
// runtime's own timers are not used: they wake about a millisecond late
// when the process is idle, which would add up to a millisecond to every
// latency at the low rates this mode exists for. How late the generator
// still wrote each request is reported as the send lag, so that what
// belongs to the generator can be told apart.

// portablePacer makes runPaced use the pacer and reader goroutines where
// the event loop (loop_linux.go) would run; the tests run both.
var portablePacer = false

// MaxRate bounds Config.Rate.
const MaxRate = 1e6

// openConn is a connection that can be driven open-loop; the line
// protocols' pipeConn is one.
type openConn interface {
	// sendAt takes the next request from w and sends it at once,
	// counting its latency from sched. It returns false when w has no
	// more requests.
	sendAt(w *Worker, sched time.Time, limit int) bool
	// receive reads replies until the pacer is done and nothing is in
	// flight, the deadline passes or the connection fails.
	receive(w *Worker, deadline time.Time) error
	// startSending readies the connection for sendAt and receive;
	// endSending tells receive that nothing more will be sent.
	startSending()
	endSending()
}

// runPaced runs ph open-loop over conns at cfg.Rate until ph.t1.
func runPaced(ctx context.Context, conns []Conn, cfg *Config, ph *phase, start time.Time) ([]*Worker, error) {
	ocs := make([]openConn, len(conns))
	for i, c := range conns {
		oc, ok := c.(openConn)
		if !ok {
			return nil, fmt.Errorf("a fixed rate needs a line protocol (client or master), not %s", cfg.Protocol)
		}
		ocs[i] = oc
	}
	if !portablePacer {
		if ws, ok, err := runLoop(ctx, conns, cfg, ph, start); ok {
			return ws, err
		}
	}
	ws := newWorkers(len(conns), cfg, ph)
	for _, oc := range ocs {
		oc.startSending()
	}
	deadline := ph.t1.Add(cfg.Timeout)
	var g sync.WaitGroup
	for i, oc := range ocs {
		g.Go(func() {
			if err := oc.receive(ws[i], deadline); err != nil {
				ws[i].Err(err)
			}
		})
	}
	// The pacer has its OS thread to itself and changes the thread's
	// timer slack, so it gives the slack back and unlocks before it ends.
	// It must not end locked: the runtime would then end the thread, and
	// a server this process started from that thread with a parent-death
	// signal (internal/realserver's ParentDeath) would get it, since
	// Linux ties that signal to the thread that forked, not the process.
	g.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		preciseSleeps()
		defer defaultSleeps()
		pace(ctx, ocs, ws, cfg.Rate, start, ph.t1, cfg.Depth)
		for _, oc := range ocs {
			oc.endSending()
		}
	})
	g.Wait()
	return ws, nil
}

// pace sends request k at start + k/rate on connection k mod len(conns)
// until end, ctx's end, or the workers' request budget. A request whose
// connection already has limit in flight is not sent but counted as
// unsent: the server is that far behind. It runs on a locked OS thread.
func pace(ctx context.Context, conns []openConn, ws []*Worker, rate float64, start, end time.Time, limit int) {
	n := int64(len(conns))
	for k := int64(0); ctx.Err() == nil; k++ {
		sched := start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
		if !sched.Before(end) {
			return
		}
		if d := time.Until(sched); d > 0 {
			sleepFor(d)
		}
		if i := k % n; !conns[i].sendAt(ws[i], sched, limit) {
			return
		}
	}
}

// sendAt implements openConn.
func (c *pipeConn) sendAt(w *Worker, sched time.Time, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := w.Next()
	if !ok {
		return false
	}
	if c.broken != nil {
		w.Done(r, sched, OutcomeError)
		return true
	}
	if len(c.pending) >= limit {
		w.skip(sched)
		return true
	}
	err := c.issue(r, sched)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		c.broken = err
		c.abort(OutcomeError, w)
		c.wake.Broadcast()
		return true
	}
	w.sent(sched, time.Now())
	if len(c.pending) == 1 {
		c.wake.Broadcast()
	}
	return true
}

// endSending implements openConn.
func (c *pipeConn) endSending() {
	c.mu.Lock()
	c.sending = false
	c.wake.Broadcast()
	c.mu.Unlock()
}

// receive implements openConn. The reader blocks in read only while a
// request is in flight, so it never waits for a reply that is not owed.
func (c *pipeConn) receive(w *Worker, deadline time.Time) error {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return err
	}
	for {
		c.mu.Lock()
		for len(c.pending) == 0 && c.sending && c.broken == nil {
			c.wake.Wait()
		}
		if len(c.pending) == 0 || c.broken != nil {
			err := c.broken
			c.abort(OutcomeError, w)
			c.mu.Unlock()
			return err
		}
		c.mu.Unlock()
		line, rerr := c.br.ReadSlice('\n')
		c.mu.Lock()
		err := c.received(line, rerr, w)
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// received handles one read's result under c.mu; an error ends the
// connection for the pacer too.
func (c *pipeConn) received(line []byte, rerr error, w *Worker) error {
	var err error
	if rerr != nil {
		err = c.readFailed(rerr, w)
	} else if _, err = c.onLine(line, w); err == nil && c.bw.Buffered() > 0 {
		if err = c.bw.Flush(); err != nil {
			c.abort(OutcomeError, w)
		}
	}
	if err != nil && c.broken == nil {
		c.broken = err
	}
	return err
}

// startSending implements openConn.
func (c *pipeConn) startSending() {
	c.mu.Lock()
	c.sending = true
	c.mu.Unlock()
}

var errPacedAttack = errors.New("a fixed rate (open loop) cannot be combined with an attack")
