package engine

import (
	"context"
	"sync"
	"time"

	"github.com/authd-project/authd/schemes"
)

// Batched verification. SHA-512-crypt, Dovecot's default scheme, can be
// verified several at a time on one core (schemes.VerifyBatch: up to eight
// in the lanes of the AVX-512 registers, each about three times cheaper
// than alone). The verify queue's bounds stay what they are — a worker
// slot per CPU, the same limits on how many wait and for how long, the
// same shedding — but the holder of a slot verifies every batchable
// request waiting at that moment, up to schemes.BatchMax, not only its
// own:
//
//   - each batchable verification puts itself on the batch queue, then
//     waits for a worker slot as any verification does;
//   - whoever gets a slot takes the oldest waiting jobs (its own among
//     them, unless a runner has it already) — only one while no more
//     wait than there are slots, so that a few logins are hashed one per
//     core — verifies them together, and hands every job its answer; it
//     runs more batches until its own job is done, then frees the slot;
//   - a job answered meanwhile stops waiting for a slot; one that waited
//     too long is shed as before, unless a runner has already taken it
//     (then its answer is on its way and is awaited: hashing, once
//     started, is not interrupted).
//
// At low load a batch holds one job, which schemes.VerifyBatch verifies
// the usual way, so a lone login waits no longer than before.

// batchQueue holds the batchable verifications waiting for a runner.
type batchQueue struct {
	mu      sync.Mutex
	pending []*batchJob
}

// batchJob is one waiting verification.
type batchJob struct {
	job   *schemes.BatchJob
	done  chan struct{} // closed once job's Match is set
	taken bool          // under batchQueue.mu: a runner has it
	took  time.Duration // the batch's hashing time
	stop  context.CancelFunc
}

func (q *batchQueue) push(j *batchJob) {
	q.mu.Lock()
	q.pending = append(q.pending, j)
	q.mu.Unlock()
}

// take removes the oldest waiting jobs for a runner: up to n of them,
// but only one while no more are waiting than there are workers. A
// batch costs one core as long as two verifications alone, so a few
// waiting logins are answered sooner one per core than together on one.
func (q *batchQueue) take(n, workers int) []*batchJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) <= workers {
		n = 1
	}
	n = min(n, len(q.pending))
	out := make([]*batchJob, n)
	copy(out, q.pending)
	for _, j := range out {
		j.taken = true
	}
	q.pending = append(q.pending[:0], q.pending[n:]...)
	return out
}

// withdraw removes j if no runner has taken it, and reports whether it
// did.
func (q *batchQueue) withdraw(j *batchJob) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if j.taken {
		return false
	}
	for i, p := range q.pending {
		if p == j {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			break
		}
	}
	return true
}

// verifyBatched verifies sj on the verify pool, batched with others.
func (e *Engine) verifyBatched(ctx context.Context, scheme string, sj *schemes.BatchJob) (bool, error) {
	// wctx also ends when a runner has answered the job, so that the
	// wait for a slot ends with it.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j := &batchJob{job: sj, done: make(chan struct{}), stop: cancel}
	e.batch.push(j)
	shed, err := e.verifies.acquire(wctx)
	switch {
	case err == nil:
		e.runBatches(j)
		e.verifies.release()
	case !e.batch.withdraw(j):
		shed, err = "", nil // taken: the answer is coming
	}
	if shed != "" {
		e.noteShed(shed)
	}
	if err != nil {
		return false, err
	}
	<-j.done
	e.obs.Verify(canonicalScheme(scheme), j.took)
	return sj.Match(), nil
}

// runBatches verifies waiting jobs, a batch at a time, while the caller
// holds a worker slot, until own is answered or nothing waits.
func (e *Engine) runBatches(own *batchJob) {
	for {
		jobs := e.batch.take(schemes.BatchMax, e.verifies.workers)
		if len(jobs) == 0 {
			return
		}
		sjs := make([]*schemes.BatchJob, len(jobs))
		for i, j := range jobs {
			sjs[i] = j.job
		}
		start := time.Now()
		schemes.VerifyBatch(sjs)
		took := time.Since(start)
		for _, j := range jobs {
			j.took = took
			close(j.done)
			j.stop()
		}
		select {
		case <-own.done:
			return
		default:
		}
	}
}
