package procs

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/gcfloor"
)

// sim feeds a controller readings of a process whose CPU time, Costly
// calls and scheduler waits grow as the test says.
type sim struct {
	c   controller
	now reading
}

func newSim(p Policy) *sim {
	s := &sim{now: reading{at: time.Unix(1000, 0)}}
	s.c = controller{p: p, last: s.now}
	return s
}

// run advances ms at cores, with waits scheduler waits of which queued
// were queueing, then decides.
func (s *sim) run(ms int, cores float64, waits, queued uint64, isNarrow bool) bool {
	d := time.Duration(ms) * time.Millisecond
	s.now.at = s.now.at.Add(d)
	s.now.cpu += time.Duration(float64(d) * cores)
	s.now.waits += waits
	s.now.queued += queued
	return s.c.decide(s.now, isNarrow)
}

func (s *sim) costly() { s.now.costly++ }

// quietWindow feeds n readings of a wide process at cores, none of them
// queued, and checks that only the last one narrows.
func quietWindow(t *testing.T, s *sim, n int, cores float64) {
	t.Helper()
	for i := range n - 1 {
		if s.run(100, cores, 100, 0, false) {
			t.Fatalf("narrowed after %d readings at %.2f cores, before a full window", i+1, cores)
		}
	}
	if !s.run(100, cores, 100, 0, false) {
		t.Fatalf("still wide after a window at %.2f cores", cores)
	}
}

func TestDecide(t *testing.T) {
	p := Policy{Interval: 100 * time.Millisecond, Narrow: 0.6, Widen: 0.75, Settle: 500 * time.Millisecond,
		Queued: 200 * time.Microsecond, QueuedHigh: 0.1, QueuedLow: 0.05, Collect: 0.65}
	wide := func(s *sim, ms int, cores float64) bool { return s.run(ms, cores, 100, 0, false) }

	t.Run("wide, quiet on average over Settle, narrows", func(t *testing.T) {
		// The first reading starts the window; the sixth ends it.
		quietWindow(t, newSim(p), 6, 0.3)
	})
	t.Run("wide, a burst within a quiet window does not count", func(t *testing.T) {
		s := newSim(p)
		wide(s, 100, 0)
		if wide(s, 100, 0.9) {
			t.Fatal("narrowed during a burst")
		}
		for range 3 {
			wide(s, 100, 0.2)
		}
		if !wide(s, 100, 0.2) {
			t.Fatal("a short burst kept a quiet process wide (0.34 cores on average)")
		}
	})
	t.Run("wide, busy on average, stays and starts a new window", func(t *testing.T) {
		s := newSim(p)
		wide(s, 100, 0.7)
		for range 4 {
			wide(s, 100, 0.7)
		}
		if wide(s, 100, 0.7) {
			t.Fatal("narrowed at 0.7 cores, over Narrow")
		}
		// The reading that ended the busy window started the next.
		quietWindow(t, s, 5, 0.1)
	})
	t.Run("wide, a busy window that ends quiet, stays", func(t *testing.T) {
		s := newSim(p)
		for range 5 {
			wide(s, 100, 0.9)
		}
		if wide(s, 100, 0.2) {
			t.Fatal("narrowed on the last reading of a window that averaged 0.76 cores")
		}
	})
	t.Run("wide, queueing, stays", func(t *testing.T) {
		s := newSim(p)
		for range 10 {
			if s.run(100, 0.4, 100, 8, false) {
				t.Fatal("narrowed with 8 % of the waits queued, over QueuedLow")
			}
		}
	})
	t.Run("wide, costly work starts the window over", func(t *testing.T) {
		s := newSim(p)
		wide(s, 100, 0.1)
		wide(s, 300, 0.1)
		s.costly()
		wide(s, 100, 0.1)
		if wide(s, 200, 0.1) {
			t.Fatal("narrowed right after costly work")
		}
		if !wide(s, 300, 0.1) {
			t.Fatal("still wide a window after costly work")
		}
	})
	t.Run("narrow, between the thresholds, stays", func(t *testing.T) {
		s := newSim(p)
		for range 20 {
			if !s.run(100, 0.7, 100, 9, true) {
				t.Fatal("widened at 0.7 cores and 9 % queued, under Widen and QueuedHigh")
			}
		}
	})
	t.Run("narrow, busy, widens at once", func(t *testing.T) {
		s := newSim(p)
		if s.run(100, 0.8, 100, 0, true) {
			t.Fatal("stayed on one processor at 0.8 cores")
		}
	})
	t.Run("narrow, queueing, widens at once", func(t *testing.T) {
		s := newSim(p)
		if s.run(100, 0.5, 100, 20, true) {
			t.Fatal("stayed on one processor with 20 % of the waits queued")
		}
	})
	t.Run("narrow, costly work, widens at once", func(t *testing.T) {
		s := newSim(p)
		s.costly()
		if s.run(1, 0, 0, 0, true) {
			t.Fatal("stayed on one processor with costly work")
		}
	})
	t.Run("narrow, a collection completed, widens at once", func(t *testing.T) {
		s := newSim(p)
		s.now.heap.cycles++
		if s.run(100, 0.3, 100, 0, true) {
			t.Fatal("stayed on one processor after a collection")
		}
	})
	t.Run("wide, a collection starts the window over", func(t *testing.T) {
		s := newSim(p)
		for range 4 {
			wide(s, 100, 0.1)
		}
		s.now.heap.cycles++
		if wide(s, 100, 0.1) {
			t.Fatal("narrowed on the reading that saw a collection")
		}
		quietWindow(t, s, 5, 0.1)
	})
	t.Run("just widened, stays wide for a window", func(t *testing.T) {
		s := newSim(p)
		s.run(100, 0.9, 100, 0, true)
		quietWindow(t, s, 6, 0.1)
	})
}

func TestGrown(t *testing.T) {
	for _, c := range []struct {
		h    heapState
		want float64
	}{
		{heapState{inUse: 10, live: 10, goal: 110}, 0},
		{heapState{inUse: 75, live: 10, goal: 110}, 0.65},
		{heapState{inUse: 110, live: 10, goal: 110}, 1},
		{heapState{inUse: 8, live: 10, goal: 110}, 0},             // swept below the last live heap
		{heapState{inUse: 50, live: 10, goal: 10}, 0},             // no room read
		{heapState{inUse: 50}, 0},                                 // nothing read
		{heapState{inUse: 75, live: 10, goal: 110, off: true}, 0}, // the collector off
	} {
		if got := c.h.grown(); got != c.want {
			t.Errorf("%+v: grown = %v, want %v", c.h, got, c.want)
		}
	}
}

// watch records the switches Run makes until the returned stop is called.
func watch(t *testing.T) <-chan bool {
	t.Helper()
	ch := make(chan bool, 16)
	changed = func(narrow bool) { ch <- narrow }
	t.Cleanup(func() { changed = func(bool) {} })
	return ch
}

func next(t *testing.T, ch <-chan bool, want bool) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("switched to narrow=%v, want narrow=%v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no switch to narrow=%v within 10 s", want)
	}
}

// startRun runs Run with a quick policy until the test ends.
func startRun(t *testing.T) {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("the runtime's default is one processor: nothing to adjust")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		p := Default
		p.Interval, p.Settle = 5*time.Millisecond, 50*time.Millisecond
		Run(ctx, p)
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if narrowed.Load() || runtime.GOMAXPROCS(0) < 2 {
			t.Errorf("after Run: narrowed=%v GOMAXPROCS=%d, want the default back", narrowed.Load(), runtime.GOMAXPROCS(0))
		}
	})
}

func TestRunNarrowsWhenIdleAndWidensForCostlyWork(t *testing.T) {
	ch := watch(t)
	startRun(t)
	next(t, ch, true)
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Fatalf("narrowed, but GOMAXPROCS is %d", n)
	}
	Costly()
	next(t, ch, false)
	if n := runtime.GOMAXPROCS(0); n < 2 {
		t.Fatalf("widened, but GOMAXPROCS is %d", n)
	}
	next(t, ch, true)
}

func TestRunWidensWhenBusy(t *testing.T) {
	ch := watch(t)
	startRun(t)
	next(t, ch, true)
	// Spinning goroutines keep the one processor busy: a full core.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sink atomic.Uint64
	for range 2 {
		wg.Go(func() {
			x := uint64(1)
			for {
				select {
				case <-stop:
					sink.Add(x)
					return
				default:
				}
				for range 100000 {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
		})
	}
	next(t, ch, false)
	close(stop)
	wg.Wait()
	next(t, ch, true)
}

func TestRunCollectsOnEveryProcessor(t *testing.T) {
	ch := watch(t)
	procsAt := make(chan int, 16)
	collect = func() {
		procsAt <- runtime.GOMAXPROCS(0)
		gcfloor.Start()
	}
	t.Cleanup(func() { collect = gcfloor.Start })
	startRun(t)
	next(t, ch, true)
	// Garbage at about 64 MB/s, in pauses that keep the process quiet,
	// until Run collects.
	var sink atomic.Pointer[[]byte]
	deadline := time.After(10 * time.Second)
	for {
		select {
		case n := <-procsAt:
			if n < 2 {
				t.Fatalf("collected on %d processor", n)
			}
			return
		case <-deadline:
			t.Fatal("no collection by Run within 10 s of allocation")
		case <-time.After(time.Millisecond):
			b := make([]byte, 64<<10)
			sink.Store(&b)
		}
	}
}

func TestRunLeavesASetGOMAXPROCSAlone(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	ch := watch(t)
	runReturns(t, "with GOMAXPROCS set")
	select {
	case n := <-ch:
		t.Fatalf("switched (narrow=%v) with GOMAXPROCS set", n)
	default:
	}
}

func TestOneRunAtATime(t *testing.T) {
	ch := watch(t)
	startRun(t)
	next(t, ch, true)
	runReturns(t, "a second Run while the first is under way")
}

// runReturns runs Run with the default policy and fails unless it returns
// by itself.
func runReturns(t *testing.T, why string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Default)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return by itself: %s", why)
	}
}

func TestWidthWhileNarrow(t *testing.T) {
	ch := watch(t)
	want := runtime.GOMAXPROCS(0)
	startRun(t)
	next(t, ch, true)
	if got := Width(); got != want {
		t.Fatalf("Width while narrowed = %d, want the wide %d", got, want)
	}
}

func TestReadHeap(t *testing.T) {
	var r reader
	h := r.read(Default.Queued).heap
	if h.inUse == 0 || h.goal == 0 || h.off {
		t.Fatalf("read %+v: want the heap in use, a goal, and the collector on", h)
	}
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	if h := r.read(Default.Queued).heap; !h.off {
		t.Fatalf("read %+v with the collector off", h)
	}
}
