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
		{4 << 20, 32 << 20, 100, 800},     // 4 MiB live: the next GC 32 MiB later
		{3 << 20, 32 << 20, 100, 1066},    // rounded down
		{64 << 20, 32 << 20, 100, 100},    // more live than the floor: the default
		{32 << 20, 32 << 20, 150, 150},    // never below the base
		{0, 32 << 20, 100, maxPercent},    // nothing live: bounded
		{1, 1 << 40, 100, maxPercent},     // no overflow
		{10 << 20, 32 << 20, 100, 320},    // 10 MiB live
		{1 << 30, DefaultFloor, 100, 100}, // a 1 GiB cache
	} {
		if got := Percent(tc.live, tc.floor, tc.base); got != tc.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", tc.live, tc.floor, tc.base, got, tc.want)
		}
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
	Run(ctx, DefaultFloor) // returns at once
	before := gcPercent()

	// Unset for the rest (t.Setenv restores it afterwards).
	t.Setenv("GOGC", "")
	unsetenv(t)
	var wg sync.WaitGroup
	wg.Go(func() { Run(ctx, 1<<40) })
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
