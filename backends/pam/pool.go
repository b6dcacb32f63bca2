package pam

import (
	"context"
	"errors"
	"runtime"
	"sync"
)

// errClosed is returned for requests that arrive after Close.
var errClosed = errors.New("pam: passdb is closed")

// pool runs PAM transactions on a fixed number of goroutines, each locked
// to its own OS thread for its whole life.
//
// Why threads: libpam and its modules are C code that may keep per-thread
// state and that expect every call of one transaction (pam_start …
// pam_end, and the conversation callbacks in between) on the same thread.
// Why a fixed number: a PAM call blocks its thread for as long as the
// module likes (a network-backed module, pam_faildelay, a hung server),
// and cannot be interrupted. A bounded pool keeps a slow module from
// eating one thread per request; requests beyond the bound wait for a
// worker, and give up when their context ends, so one slow module turns
// into temp_fail answers instead of an unbounded pile-up.
//
// A worker that has run maxJobs transactions is replaced by a fresh one
// and exits without unlocking its thread, which makes the Go runtime
// terminate that thread: the closest in-process equivalent of Dovecot's
// max_requests, which restarts the auth worker process after that many
// PAM requests to shed state leaked by modules. (Leaked heap memory is
// process-wide and stays; only per-thread state goes.)
type pool struct {
	jobs    chan func()
	quit    chan struct{}
	maxJobs int // 0: a worker lives until Close
	wg      sync.WaitGroup
	once    sync.Once
}

// newPool starts workers goroutines (at least one).
func newPool(workers, maxJobs int) *pool {
	p := &pool{jobs: make(chan func()), quit: make(chan struct{}), maxJobs: maxJobs}
	if workers < 1 {
		workers = 1
	}
	p.wg.Add(workers)
	for range workers {
		go p.worker()
	}
	return p
}

func (p *pool) worker() {
	defer p.wg.Done()
	runtime.LockOSThread()
	// Deliberately no UnlockOSThread: when this goroutine returns, its
	// thread, and whatever thread-local state the PAM modules left on it,
	// goes with it.
	done := 0
	for {
		select {
		case <-p.quit:
			return
		case job := <-p.jobs:
			job()
			done++
			if p.maxJobs > 0 && done >= p.maxJobs {
				select {
				case <-p.quit:
				default:
					// Add before this worker's Done, so Close's Wait
					// cannot see zero in between.
					p.wg.Add(1)
					go p.worker()
				}
				return
			}
		}
	}
}

// run waits for a free worker (or for ctx to end) and runs job on it. It
// returns nil once job has returned. If ctx ends while job runs, run
// returns ctx.Err() at once and job finishes on its own; the caller must
// then not look at anything job writes.
func (p *pool) run(ctx context.Context, job func()) error {
	done := make(chan struct{})
	wrapped := func() {
		defer close(done)
		job()
	}
	select {
	case p.jobs <- wrapped:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-p.quit:
		return errClosed
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// close stops the workers. It waits for running jobs to finish, which is
// as long as the PAM modules take: PAM calls cannot be interrupted.
func (p *pool) close() {
	p.once.Do(func() { close(p.quit) })
	p.wg.Wait()
}
