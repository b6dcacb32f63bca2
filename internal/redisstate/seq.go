package redisstate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/authd-project/authd/internal/blocking"
)

// The flush sequence (docs/scale-out.md, "Cache: L1, generations, L2"):
// every flush raises it after the generations it raised, so an L1 entry
// whose generation was current at sequence s is still current while the
// sequence reads s. Checking it is one GET shared by every login waiting
// at that moment, instead of one read of the user's generation per login.

// seqReads coalesces the reads of the flush sequence: a caller joins the
// next read not yet sent (so the value it gets was read after it asked),
// and seqLoop sends reads one after the other while callers wait.
type seqReads struct {
	mu      sync.Mutex
	running bool
	next    *seqRound
	kick    chan struct{}
}

// seqRound is one read and the callers waiting for it.
type seqRound struct {
	done chan struct{}
	n    int // callers waiting, under seqReads.mu
	v    uint64
	err  error
}

var errNotRunning = errors.New("the client is not running")

// seqGap spaces the reads of a busy host: a read costs authd about ten
// microseconds of system calls whatever it answers, and the logins that
// arrive meanwhile join the next one. A host is busy when the last read
// answered more than one login; one login at a time never waits for the
// gap. The gap also bounds a busy host's rate (the logins in flight per
// gap): 1 ms cut a 64-in-flight benchmark to half of what 250 µs gave.
const seqGap = 250 * time.Microsecond

// FlushSeq implements cache.Shared. The wait is bounded by the reads'
// own deadlines (seqLoop's calls: the read in flight when the caller
// came, then its own, at most twice the call timeout and the spacing),
// not by ctx: a caller's context would cost a timer per login, the very
// cost the shared read saves.
func (s cacheStore) FlushSeq(ctx context.Context) (uint64, error) {
	c := s.c
	if c.down.Load() {
		c.stats.skipped.get(opGeneration).Add(1)
		return 0, fmt.Errorf("%s: %w", opGeneration, ErrUnavailable)
	}
	r := &c.seq
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return 0, fmt.Errorf("%s: %w", opGeneration, errNotRunning)
	}
	rd := r.next
	if rd == nil {
		rd = &seqRound{done: make(chan struct{})}
		r.next = rd
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	rd.n++
	r.mu.Unlock()
	// The wait does not watch ctx: a caller that must not wait hands
	// its other work on first.
	blocking.Announce(ctx)
	<-rd.done
	return rd.v, rd.err
}

// seqLoop sends the reads of the flush sequence until ctx ends, then
// answers the callers still waiting with an error.
func (c *Client) seqLoop(ctx context.Context) {
	r := &c.seq
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		rd := r.next
		r.next = nil
		r.mu.Unlock()
		if rd != nil {
			rd.err = fmt.Errorf("%s: %w", opGeneration, errNotRunning)
			close(rd.done)
		}
	}()
	var last time.Time
	busy := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		if wait := seqGap - time.Since(last); busy && wait > 0 {
			time.Sleep(wait)
		}
		last = time.Now()
		r.mu.Lock()
		rd := r.next
		r.next = nil
		if rd != nil {
			busy = rd.n > 1
		}
		r.mu.Unlock()
		if rd == nil {
			continue
		}
		rd.err = c.call(ctx, opGeneration, c.o.CallTimeout, func(ctx context.Context) error {
			var err error
			rd.v, err = uintOf(c.rdb.Get(ctx, c.keys.flushSeq()))
			return err
		})
		close(rd.done)
	}
}
