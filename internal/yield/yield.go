// Package yield gives the processor to goroutines that wait for one, and
// only when some do.
//
// authd yields in a few places so that work about to finish can join what
// the yielding goroutine is about to do (replies that share one write,
// Redis calls that share one round trip) or so that a long hash does not
// keep the goroutines it feeds from a core. runtime.Gosched does that, but
// it also wakes a thread whenever a processor is idle (a futex call, made
// on the yielding goroutine's own path) so that the idle processor can
// look for work, and on a lightly loaded server a processor nearly always
// is: the wake-up finds nothing to run, and it made a lone SHA-512-crypt
// take a fifth longer (docs/performance.md, "What is left on the hot
// path", item 3). When no goroutine waits in a run queue, a yield can let
// nothing run and nothing join, so Others skips it.
package yield

import (
	"runtime"
	"runtime/metrics"
	"sync"
)

// Others yields the processor when goroutines wait to run.
func Others() {
	if Waiting() {
		runtime.Gosched()
	}
}

// Waiting reports whether goroutines wait in a run queue: true when the
// runtime cannot tell (Go before 1.26 has no such metric). It costs about
// 50 ns; the runtime counts under its scheduler lock, as a yield takes it.
func Waiting() bool {
	// One sample, shared under a mutex: a sample made per call would be
	// allocated (metrics.Read's argument escapes), and metrics.Read
	// serialises its callers anyway.
	runnable.mu.Lock()
	defer runnable.mu.Unlock()
	metrics.Read(runnable.s[:])
	v := runnable.s[0].Value
	return v.Kind() != metrics.KindUint64 || v.Uint64() > 0
}

var runnable = struct {
	mu sync.Mutex
	s  [1]metrics.Sample
}{s: [1]metrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}}}
