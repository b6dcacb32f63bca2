package yield

import (
	"runtime"
	"testing"
)

// TestOthers: a goroutine that waits for the processor gets it, and
// Waiting finds out when none waits (Others then skips the yield).
func TestOthers(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	// On one processor a new goroutine waits in the run queue until the
	// running one yields or blocks.
	ran := make(chan struct{})
	go close(ran)
	if !Waiting() {
		t.Fatal("a goroutine waits to run, but Waiting says none does")
	}
	Others()
	select {
	case <-ran:
	default:
		t.Fatal("Others did not let the waiting goroutine run")
	}
	// Nothing of this test waits to run now; the runtime's own goroutines
	// (a timer, a GC worker) may for a moment, so look a few times.
	for range 100 {
		if !Waiting() {
			return
		}
		runtime.Gosched()
	}
	t.Fatal("Waiting reports a goroutine waiting in every look")
}

// BenchmarkWaiting is the cost of the question, paid per yield site.
func BenchmarkWaiting(b *testing.B) {
	for b.Loop() {
		Waiting()
	}
}
