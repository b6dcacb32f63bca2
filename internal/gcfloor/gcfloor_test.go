package gcfloor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live, floor uint64
		base, want  int
	}{
		{4 << 20, 32 << 20, 100, 800},      // 4 MiB live: the next GC 32 MiB later
		{3 << 20, 32 << 20, 100, 1066},     // rounded down
		{64 << 20, 32 << 20, 100, 100},     // more live than the floor: the default
		{32 << 20, 32 << 20, 150, 150},     // never below the base
		{0, 32 << 20, 100, maxPercent},     // nothing live: bounded
		{1, 1 << 40, 100, maxPercent},      // no overflow
		{10 << 20, 32 << 20, 100, 320},     // 10 MiB live
		{1 << 30, Default.Floor, 100, 100}, // a 1 GiB cache
	} {
		if got := Percent(tc.live, tc.floor, tc.base); got != tc.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.floor, tc.base, got, tc.want)
		}
	}
}

// headroomCase is a rate (allocated in elapsed) and the headroom it
// should get.
type headroomCase struct {
	name      string
	allocated uint64
	elapsed   time.Duration
	want      uint64
}

func checkHeadroom(t *testing.T, label string, p Policy, cases []headroomCase) {
	t.Helper()
	for _, tc := range cases {
		if got := p.Headroom(tc.allocated, tc.elapsed); got != tc.want {
			t.Errorf("%s, %s: Headroom(%d, %v) = %d, want %d", label, tc.name, tc.allocated, tc.elapsed, got, tc.want)
		}
	}
}

func TestHeadroom(t *testing.T) {
	p := Policy{Floor: 32 << 20, Interval: 4 * time.Second, Max: 256 << 20}
	checkHeadroom(t, "4 s", p, []headroomCase{
		{"slow allocation: the floor", 1 << 20, time.Second, 32 << 20},
		{"idle for minutes: the floor", 32 << 20, 10 * time.Minute, 32 << 20},
		{"24 MiB/s: an interval's worth", 12 << 20, time.Second / 2, 96 << 20},
		{"64 MiB/s: the maximum", 32 << 20, time.Second / 2, 256 << 20},
		{"128 MiB/s: shrinks to half the maximum", 64 << 20, time.Second / 2, 128 << 20},
		{"500 MiB/s: shrinks to the floor's neighbourhood", 250 << 20, time.Second / 2, 256 * 256 << 20 / 2000},
		{"1 GiB/s: the floor", 1 << 30, time.Second, 32 << 20},
		{"no time measured: the floor", 64 << 20, 0, 32 << 20},
		{"nothing allocated: the floor", 0, time.Second, 32 << 20},
		{"no overflow", 1 << 62, time.Nanosecond, 32 << 20},
	})
	// The default: 16 s at a moderate rate, the maximum in between, and
	// the shrinking of a 4 s interval at the rates beyond it.
	checkHeadroom(t, "default", Default, []headroomCase{
		{"4 MiB/s: 16 s worth", 4 << 20, time.Second, 64 << 20},
		{"12 MiB/s: 16 s worth", 12 << 20, time.Second, 192 << 20},
		{"32 MiB/s: the maximum, not shrunk", 32 << 20, time.Second, 256 << 20},
		{"64 MiB/s: the maximum", 64 << 20, time.Second, 256 << 20},
		{"128 MiB/s: shrinks as with a 4 s interval", 128 << 20, time.Second, 128 << 20},
	})
	// A maximum under the floor does not lower the floor; no interval is
	// the floor alone.
	if got := (Policy{Floor: 32 << 20, Interval: time.Second, Max: 1}).Headroom(1<<30, time.Second); got != 32<<20 {
		t.Errorf("maximum under the floor: %d, want the floor", got)
	}
	if got := (Policy{Floor: 32 << 20, Max: 1 << 30}).Headroom(1<<30, time.Second); got != 32<<20 {
		t.Errorf("no interval: %d, want the floor", got)
	}
}

func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// Run raises the percentage after a collection and puts the old one back
// when it stops; with GOGC set it leaves the collector alone.
func TestRun(t *testing.T) {
	t.Setenv("GOGC", "") // set: Run must do nothing
	ctx, cancel := context.WithCancel(t.Context())
	Run(ctx, Default) // returns at once
	before := gcPercent()

	// Unset for the rest (t.Setenv restores it afterwards).
	t.Setenv("GOGC", "")
	unsetenv(t)
	var wg sync.WaitGroup
	wg.Go(func() { Run(ctx, Policy{Floor: 1 << 40}) })
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() == before {
		if time.Now().After(deadline) {
			t.Fatal("the GC percentage did not change after collections")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := gcPercent(); got != maxPercent {
		t.Errorf("percentage %d with a floor far above the live heap, want %d", got, maxPercent)
	}
	cancel()
	wg.Wait()
	if got := gcPercent(); got != before {
		t.Errorf("percentage %d after Run, want %d back", got, before)
	}
}

// unsetenv removes GOGC for the test; the caller has t.Setenv'd it, so
// it is restored afterwards.
func unsetenv(t *testing.T) {
	t.Helper()
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
}

// sink keeps allocations from being optimised away.
var sink []byte

// Run sizes the headroom from the allocation between two collections: with
// a floor far under the live heap, the floor alone would leave the base
// percentage, and an hour's worth of the measured rate raises it to the
// bound.
func TestRunFollowsAllocation(t *testing.T) {
	t.Setenv("GOGC", "")
	unsetenv(t)
	before := gcPercent()
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { Run(ctx, Policy{Floor: 1, Interval: time.Hour, Max: 1 << 40}) })
	deadline := time.Now().Add(10 * time.Second)
	for gcPercent() != maxPercent {
		if time.Now().After(deadline) {
			t.Fatalf("percentage %d after collections with allocation between them, want %d", gcPercent(), maxPercent)
		}
		for range 64 {
			sink = make([]byte, 64<<10)
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	if got := gcPercent(); got != before {
		t.Errorf("percentage %d after Run, want %d back", got, before)
	}
}

func TestStart(t *testing.T) {
	if _, set := os.LookupEnv("GOGC"); set {
		t.Skip("GOGC is set")
	}
	old := debug.SetGCPercent(500)
	defer debug.SetGCPercent(old)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	Start()
	if p := debug.SetGCPercent(500); p != 500 {
		t.Fatalf("after Start the GC percentage is %d, want 500 back", p)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.ReadMemStats(&ms); ms.NumGC == before; runtime.ReadMemStats(&ms) {
		if time.Now().After(deadline) {
			t.Fatal("no collection within 10 s of Start")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStartWithTheCollectorOff(t *testing.T) {
	old := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(old)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	Start()
	if p := debug.SetGCPercent(-1); p != -1 {
		t.Fatalf("after Start the GC percentage is %d, want it off", p)
	}
	runtime.ReadMemStats(&ms)
	if ms.NumGC != before {
		t.Fatalf("Start collected %d times with the collector off", ms.NumGC-before)
	}
}
