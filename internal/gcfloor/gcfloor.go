// Package gcfloor spaces out garbage collections in a daemon whose live
// heap is small. With Go's default GOGC=100 a collection starts each time
// the heap has grown by as much as is live: authd with a passwd-file of
// ten thousand users has a few MB live and allocates about 2.5 KB per
// login, so at 40,000 logins/s it collected some twenty times a second,
// and each cycle's marking takes one of the two cores for a while — a
// delay for whichever logins arrive meanwhile (measured in
// docs/performance.md). Run raises the GC percentage after every
// collection so that the next one starts no sooner than a headroom of new
// allocation (Policy.Headroom): at least a floor, and at a moderate rate
// as much as makes the collections an interval apart. Once more is live
// than the headroom (a big auth cache) the default applies unchanged. The
// cost is at most Policy.Max in extra heap.
package gcfloor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/mono"
)

// Policy is how much allocation Run lets happen between two collections.
type Policy struct {
	// Floor is the least: a collection never starts sooner.
	Floor uint64
	// Interval is the aim at a moderate allocation rate: the headroom is
	// what the last cycle's rate fills in this time.
	Interval time.Duration
	// Max bounds the headroom, and so the extra heap. A rate too fast for
	// Max to last Shrink gets less (see Headroom).
	Max uint64
	// Shrink is the time Max must last at the rate for the headroom to be
	// Max; a faster rate shrinks it. 0 means Interval.
	Shrink time.Duration
}

// Default is authd's policy, from measurements in docs/performance.md
// ("Run of session 13", and "What is left on the hot path", item 1). At
// 30,000 logins/s (≈80 MB/s of allocation then) the 32 MiB floor alone
// meant two or three collections a second, and their few milliseconds of
// marking set the latency of about one login in a hundred: with no
// collection at all in the measured seconds, the p99 of SQL {PLAIN}
// cache-warm logins at that rate was 0.7–0.8 ms instead of 2.3–3.7 ms.
// With collections 4 s apart it was 1.1–1.4 ms. A login now allocates a
// fifth of what it did (its request memory is recycled), so 16 s between
// collections fits in the heap that 4 s took; the p99 of cached logins at
// a quarter of Dovecot's rate went from 0.43–1.06 to 0.26–0.56 ms with it
// (three alternating pairs). Only a site with thousands of logins a
// second gets past the floor.
var Default = Policy{Floor: 32 << 20, Interval: 16 * time.Second, Max: 256 << 20, Shrink: 4 * time.Second}

// maxPercent bounds the percentage Run sets when almost nothing is live.
const maxPercent = 100000

// Headroom is the allocation to allow before the next collection after
// allocated bytes in elapsed time since the previous one: an Interval's
// worth at that rate, between Floor and Max. Beyond a Shrink's worth of
// Max it shrinks again, to Max²/(a Shrink's worth): at a rate no
// affordable heap can space out (a saturated daemon allocated ≈570 MB/s
// before its requests were recycled, ≈120 MB/s after), a large heap did
// not help. Collections every 0.45 s on a 256 MiB headroom raised the
// saturated closed-loop p99 to 4.0–4.2 ms, against 1.8–3.5 ms on the
// floor, with the same throughput; shrinking brought it back to 2.3–2.8 ms.
// Shrink is apart from Interval because a long Interval would otherwise
// shrink the headroom at rates a heap of Max spaces out well: with a 16 s
// Interval shrinking too, a saturated daemon (≈120 MB/s) would collect
// every 0.28 s instead of every 1.1 s.
func (p Policy) Headroom(allocated uint64, elapsed time.Duration) uint64 {
	if elapsed <= 0 || p.Interval <= 0 || p.Max <= p.Floor {
		return p.Floor
	}
	shrink := p.Shrink
	if shrink <= 0 {
		shrink = p.Interval
	}
	rate := float64(allocated) / float64(elapsed)
	want := rate * float64(p.Interval)
	hi := float64(p.Max)
	if want > hi {
		want = hi
		if fast := rate * float64(shrink); fast > hi {
			// Faster than the maximum can space out: shrink back
			// towards the floor, as far as the rate is beyond it.
			want = hi * hi / fast
		}
	}
	return max(p.Floor, uint64(want))
}

// Run adjusts the GC percentage after every collection until ctx ends,
// then puts back the one it found. It does nothing when the GOGC
// environment variable is set (the operator's choice wins), when the
// percentage is off, or when p.Floor is 0. A GOMEMLIMIT still bounds the
// heap: the collector starts early near the limit whatever the percentage.
func Run(ctx context.Context, p Policy) {
	if _, set := os.LookupEnv("GOGC"); set || p.Floor == 0 {
		return
	}
	base := setPercent(100)
	setPercent(base)
	if base <= 0 {
		return
	}
	defer setPercent(base)
	cycles := make(chan struct{}, 1)
	var stopped atomic.Bool
	defer stopped.Store(true)
	notifyCycles(cycles, &stopped)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	lastAllocs, lastAt := sampleUint(sample[1]), mono.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cycles:
		}
		metrics.Read(sample)
		allocs, now := sampleUint(sample[1]), mono.Now()
		h := p.Headroom(allocs-min(lastAllocs, allocs), now-lastAt)
		lastAllocs, lastAt = allocs, now
		if live := sampleUint(sample[0]); live > 0 {
			setPercent(Percent(live, h, base))
		}
	}
}

// percentMu orders the changes of the GC percentage: Run's against
// Start's, which takes the percentage away for a moment.
var percentMu sync.Mutex

// setPercent is debug.SetGCPercent under percentMu.
func setPercent(p int) int {
	percentMu.Lock()
	defer percentMu.Unlock()
	return debug.SetGCPercent(p)
}

// startSink makes Start's allocation escape to the heap: only a heap
// allocation checks whether to start a collection.
var startSink atomic.Pointer[[]byte]

// Start begins a collection now and returns once it is under way,
// without waiting for it (internal/procs collects while the process has
// every processor). runtime.GC would also sweep the whole heap in the
// caller: a second sweeper beside the runtime's own, and two goroutines
// that keep yielding to the run queue keep the processors from polling
// the network, which only the runtime's monitor then does, every 10 ms.
// With the percentage at 0 the goal is the live heap, and a large
// allocation checks it at once. Start does nothing when the collector is
// off or a collection is already under way.
func Start() {
	percentMu.Lock()
	defer percentMu.Unlock()
	old := debug.SetGCPercent(0)
	if old >= 0 {
		b := make([]byte, 64<<10)
		startSink.Store(&b)
		startSink.Store(nil)
	}
	debug.SetGCPercent(old)
}

// sampleUint is a runtime metric's value, 0 if this Go does not have it.
func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() == metrics.KindUint64 {
		return s.Value.Uint64()
	}
	return 0
}

// Percent is the GC percentage that puts the next collection at least
// floor bytes above a live heap of live bytes, and never below base.
func Percent(live, floor uint64, base int) int {
	if live == 0 {
		live = 1
	}
	p := floor / live * 100
	if floor%live != 0 {
		p += floor % live * 100 / live
	}
	switch {
	case p < uint64(base):
		return base
	case p > maxPercent:
		return maxPercent
	}
	return int(p)
}

// sentinel is an object nothing refers to: its cleanup runs after the
// next collection. It holds a pointer so that it is not batched with
// other small objects (a cleanup of such an object may never run).
type sentinel struct{ _ *byte }

// notifyCycles sends on ch (without blocking) after every collection,
// until stopped is set.
func notifyCycles(ch chan<- struct{}, stopped *atomic.Bool) {
	runtime.AddCleanup(new(sentinel), func(struct{}) {
		if stopped.Load() {
			return
		}
		select {
		case ch <- struct{}{}:
		default:
		}
		notifyCycles(ch, stopped)
	}, struct{}{})
}
