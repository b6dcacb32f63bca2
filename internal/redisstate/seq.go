package redisstate

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	v    uint64
	err  error
}

var errNotRunning = errors.New("the client is not running")

// Reads go back to back while callers wait: the logins that ask while a
// read is in flight share the next one, which is all the coalescing a busy
// host needs. Spacing the reads of a busy host (250 µs in session 6) cost
// a fifth of the SQL cache-warm rate once logins ran on their connection's
// reader (docs/performance.md, "Scale-out: authd with Redis against authd
// alone"): the wait for the spacing, not the reads' CPU, bounded the rate.

// FlushSeq implements cache.Shared. The wait is bounded by the reads'
// own deadlines (seqLoop's calls: the read in flight when the caller
// came, then its own, at most twice the call timeout),
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		}
		r.mu.Lock()
		rd := r.next
		r.next = nil
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
