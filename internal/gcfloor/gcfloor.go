// Package gcfloor spaces out garbage collections in a daemon whose live
// heap is small. With Go's default GOGC=100 a collection starts each time
// the heap has grown by as much as is live: authd with a passwd-file of
// ten thousand users has a few MB live and allocates about 2 KB per
// login, so at 40,000 logins/s it collected some twenty times a second,
// and each cycle's marking takes one of the two cores for a while — a
// delay for whichever logins arrive meanwhile (measured in
// docs/performance.md). Run raises the GC percentage after every
// collection so that the next one starts no sooner than a floor of new
// allocation; once the live heap is larger than the floor (a big auth
// cache) the default applies unchanged. The cost is at most the floor in
// extra heap.
package gcfloor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// DefaultFloor is the allocation between two collections below which Run
// does not let the collector start: 32 MiB.
const DefaultFloor = 32 << 20

// maxPercent bounds the percentage Run sets when almost nothing is live.
const maxPercent = 100000

// Run adjusts the GC percentage after every collection until ctx ends,
// then puts back the one it found. It does nothing when the GOGC
// environment variable is set (the operator's choice wins), when the
// percentage is off, or when floor is 0.
func Run(ctx context.Context, floor uint64) {
	if _, set := os.LookupEnv("GOGC"); set || floor == 0 {
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
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-cycles:
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetGCPercent(Percent(sample[0].Value.Uint64(), floor, base))
		}
	}
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
