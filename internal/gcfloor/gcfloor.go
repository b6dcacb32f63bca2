// Package gcfloor spaces out garbage collections in a daemon whose live
// heap is small. With Go's default GOGC=100 a collection starts each time
// the heap has grown by as much as is live: authd with a passwd-file of
// ten thousand users has a few MB live and allocates about 2.5 KB per
// login, so at 40,000 logins/s it collected some twenty times a second,
// and each cycle's marking takes one of the two cores for a while — a
// delay for whichever logins arrive meanwhile (measured in
// docs/performance.md). Run raises the GC percentage after every
// collection so that the next one starts no sooner than a headroom of new
// allocation: at least a floor, and more while allocation is fast, so
// that collections come about once per interval, up to a maximum. Once
// more than that headroom is live (a big auth cache) the default applies
// unchanged. The cost is at most the maximum in extra heap.
package gcfloor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/internal/mono"
)

// Policy is how much allocation Run lets happen between two collections.
type Policy struct {
	// Floor is the least: a collection never starts sooner.
	Floor uint64
	// Interval is the aim while allocation is fast: the headroom is what
	// the last cycle's allocation rate fills in this time, so at most
	// about one collection per Interval, ...
	Interval time.Duration
	// Max is the most, however fast the allocation: it bounds the extra
	// heap.
	Max uint64
}

// Default is authd's policy. At 30,000 logins/s (≈80 MB/s of allocation)
// the 32 MiB floor alone meant two or three collections a second, and the
// few milliseconds of marking each set the latency of about one login in a
// hundred; with no collection at all in the measured seconds the p99 at
// that rate fell from 1.5–3.3 ms to 0.7–0.8 ms (docs/performance.md, "Run
// of session 13"). Four seconds apart the collections touch a few logins
// in a thousand. Only a site with thousands of logins a second reaches the
// maximum; one with tens a second stays at the floor.
var Default = Policy{Floor: 32 << 20, Interval: 4 * time.Second, Max: 256 << 20}

// maxPercent bounds the percentage Run sets when almost nothing is live.
const maxPercent = 100000

// Headroom is the allocation to allow before the next collection after
// allocated bytes in elapsed time since the previous one.
func (p Policy) Headroom(allocated uint64, elapsed time.Duration) uint64 {
	h := p.Floor
	if elapsed > 0 && p.Interval > 0 {
		want := float64(allocated) * (float64(p.Interval) / float64(elapsed))
		if want > float64(h) {
			h = uint64(min(want, float64(max(p.Max, p.Floor))))
		}
	}
	return h
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
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	if base <= 0 {
		return
	}
	defer debug.SetGCPercent(base)
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
			debug.SetGCPercent(Percent(live, h, base))
		}
	}
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
