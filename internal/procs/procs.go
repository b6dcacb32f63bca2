// Package procs runs the daemon on one processor while it is nearly idle
// and on every processor the runtime would give it when it is busy.
//
// An authentication daemon spends most of a quiet day waiting for the
// network. With GOMAXPROCS above one, each goroutine another wakes (a
// request handed from a socket's reader to the code that waits for its
// backend, a reply handed back) may wake a second thread to look for work
// that the first one then does itself: futex calls, context switches and
// spinning on a core the database and the client need. At a few thousand
// LDAP logins a second (a quarter of what Dovecot's auth process serves
// at most on the reference machine) authd spent 120–135 µs of CPU per
// login on all processors and 74–78 µs on one, as much as Dovecot's own
// process, and its median latency fell to Dovecot's (docs/performance.md,
// "Adaptive processors"). Saturated, or hashing, one processor is too few.
// So Run narrows to one processor after the process has used less than
// Policy.Narrow cores on average for Policy.Settle, with goroutines
// seldom kept waiting for a processor, and widens again as soon as it uses
// more than Policy.Widen cores on the one, as soon as goroutines queue for
// it (a backend-bound load can be saturated at half a core: its replies
// arrive together), or the moment costly work begins (Costly).
//
// A garbage collection needs a second processor too. On one, the
// collector's marking and the sweeping after it share the processor with
// the logins, and a goroutine that yields the processor to the run queue
// (as the background sweeper does between spans) is run again before the
// network is polled: the runtime then looks at the sockets only every
// 10 ms. A collection of a 260 MB heap (gcfloor lets the heap grow that
// far between collections at a moderate rate) held cached passwd-file
// logins at a quarter of Dovecot's rate for 50 ms, and half of that run's
// slowest percent of logins waited in it. When the runtime will start its
// next collection cannot be read (its pacer picks a point from 70 % to
// 95 % of the way from the live heap to the goal), so on one processor
// Run does not wait for it: once the heap has grown Policy.Collect of that
// way, it widens and starts the collection itself (gcfloor.Start), and
// narrows again a Settle later. A collection that happens anyway widens
// too.
package procs

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authd-project/authd/internal/gcfloor"
)

// Policy says when Run narrows and widens.
type Policy struct {
	// Interval is how often the process's CPU time and its goroutines'
	// waits for a processor are read.
	Interval time.Duration
	// Narrow, in cores: on every processor, using less than this on
	// average over Settle (and no costly work, and a QueuedLow share of
	// waits at most) narrows to one.
	Narrow float64
	// Widen, in cores: on one processor, using more than this over one
	// Interval widens again. Narrow must be below it: the same load costs
	// more CPU on several processors than on one, so the gap between the
	// two keeps a steady load from switching back and forth.
	Widen float64
	// Settle is the window over which a wide process's use is averaged.
	Settle time.Duration
	// Queued is how long a goroutine that became runnable waits for a
	// processor before the wait counts as queueing.
	Queued time.Duration
	// QueuedHigh: on one processor, a larger share of queued waits over
	// one Interval widens again. QueuedLow: on every processor, a window
	// with a larger share does not narrow.
	QueuedHigh, QueuedLow float64
	// Collect: on one processor, once the heap has grown this share of
	// the way from what the last collection left live to the goal of the
	// next, Run widens and starts a collection. It must be below 0.7:
	// from there on the runtime may start one itself. 0 leaves the
	// collections to the runtime.
	Collect float64
}

// Default is authd's policy (docs/performance.md, "Adaptive
// processors"). LDAP logins at half of Dovecot's maximum rate used 0.45–
// 0.51 cores on two processors and 0.35–0.50 on one; cached passwd-file
// logins at a quarter of its rate 0.39–0.45 on one. On one processor, at
// most 4 % of the goroutines' waits were 200 µs or longer at those rates,
// and 18–29 % with LDAP logins as fast as slapd answers; the closed loops
// used 0.63–0.97 cores on two.
var Default = Policy{
	Interval: 100 * time.Millisecond, Narrow: 0.6, Widen: 0.75, Settle: 500 * time.Millisecond,
	Queued: 200 * time.Microsecond, QueuedHigh: 0.1, QueuedLow: 0.05,
	Collect: 0.65,
}

// state is what Run and Costly share.
var (
	running  atomic.Bool   // a Run is under way: only one may be
	narrowed atomic.Bool   // Run has set GOMAXPROCS to 1
	width    atomic.Int32  // GOMAXPROCS before Run narrowed it
	costly   atomic.Uint64 // Costly calls so far
	wake     = make(chan struct{}, 1)
)

// Costly tells Run that CPU-heavy work (a password hash that takes
// milliseconds) is starting: it wants every core, since a login queued
// behind another's hash on one processor waits for all of it. On one
// processor, Run widens at once rather than at its next reading.
func Costly() {
	costly.Add(1)
	if narrowed.Load() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}

// Run adjusts GOMAXPROCS until ctx ends, then gives the runtime back its
// default. It does nothing when the GOMAXPROCS environment variable is set
// (the operator's choice wins), when the runtime's default is already one
// processor, or while another Run is under way (GOMAXPROCS is the
// process's: a test that starts several daemons in one process gets one
// controller).
func Run(ctx context.Context, p Policy) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set || runtime.GOMAXPROCS(0) < 2 {
		return
	}
	if !running.CompareAndSwap(false, true) {
		return
	}
	defer running.Store(false)
	defer widen()
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	var r reader
	c := controller{p: p, last: r.read(p.Queued)}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-wake:
		}
		isNarrow := narrowed.Load()
		now := r.read(p.Queued)
		switch next := c.decide(now, isNarrow); {
		case next && p.Collect > 0 && now.heap.grown() >= p.Collect:
			// A reading after the collection sees it and keeps the
			// process wide for a Settle while the sweeping ends.
			widen()
			collect()
		case next && !isNarrow:
			narrow()
		case !next && isNarrow:
			widen()
		}
	}
}

// collect starts a collection; tests watch it.
var collect = gcfloor.Start

// reading is the process's counters at one moment; the controller looks
// at the differences between two.
type reading struct {
	at     time.Time
	cpu    time.Duration // user and system CPU time of the process
	costly uint64        // Costly calls
	waits  uint64        // goroutines that became runnable and then ran
	queued uint64        // of those, the ones that waited Queued or longer
	heap   heapState
}

// heapState is what the collector's next start depends on, in bytes
// except cycles.
type heapState struct {
	cycles uint64 // collections completed
	inUse  uint64 // objects not yet freed, live or dead
	live   uint64 // marked live by the last collection
	goal   uint64 // the size at which the next collection is to end
	off    bool   // the GC percentage is off: a collection cannot be started
}

// grown is the share of the way from the live heap to the goal that the
// heap has grown since the last collection: 0 if that cannot be told.
func (h heapState) grown() float64 {
	if h.off || h.goal <= h.live || h.inUse <= h.live {
		return 0
	}
	return float64(h.inUse-h.live) / float64(h.goal-h.live)
}

// delta is what happened between two readings.
type delta struct {
	span          time.Duration
	cores         float64
	costly        bool
	waits, queued uint64
	collected     bool // a collection completed
}

func (r reading) since(o reading) delta {
	d := delta{span: r.at.Sub(o.at), costly: r.costly != o.costly, waits: r.waits - o.waits, queued: r.queued - o.queued,
		collected: r.heap.cycles != o.heap.cycles}
	if d.span > 0 {
		d.cores = float64(r.cpu-o.cpu) / float64(d.span)
	}
	return d
}

// queuedShare is the share of the waits that were queueing.
func (d delta) queuedShare() float64 {
	if d.waits == 0 {
		return 0
	}
	return float64(d.queued) / float64(d.waits)
}

// controller holds Run's readings between two decisions.
type controller struct {
	p    Policy
	last reading
	// win is where the window over which a wide process is judged
	// began; a zero win.at starts one at the next reading.
	win reading
}

// decide takes a reading and reports whether the process should run on
// one processor; isNarrow is whether it does. Narrowing looks at a whole
// window of Settle, since a login's work comes in bursts that a single
// reading would mistake for load; widening looks at one reading, since a
// processor too few delays every login until it widens.
func (c *controller) decide(now reading, isNarrow bool) bool {
	d := now.since(c.last)
	c.last = now
	// A collection's sweeping goes on after it: a processor too few
	// until the next Settle.
	costly := d.costly || d.collected
	if isNarrow {
		if costly || d.cores > c.p.Widen || d.queuedShare() > c.p.QueuedHigh {
			c.win = reading{}
			return false
		}
		return true
	}
	if costly || c.win.at.IsZero() {
		c.win = now
		return false
	}
	w := now.since(c.win)
	if w.span < c.p.Settle {
		return false
	}
	c.win = now
	return w.cores < c.p.Narrow && w.queuedShare() <= c.p.QueuedLow
}

// Width is the number of processors the process runs on when busy: what
// sizes a pool of CPU-bound workers, which must not shrink to one because
// it was made while the process was quiet.
func Width() int {
	if narrowed.Load() {
		if w := width.Load(); w > 0 {
			return int(w)
		}
	}
	return runtime.GOMAXPROCS(0)
}

// narrow and widen are called by Run's goroutine only. Each keeps Width
// right while it switches: narrowed is set before GOMAXPROCS drops to one,
// and cleared only after the default is back, so that a pool made in
// between is never sized one.
func narrow() {
	width.Store(int32(runtime.GOMAXPROCS(0)))
	narrowed.Store(true)
	runtime.GOMAXPROCS(1)
	changed(true)
}

// widen gives the runtime its default back, which also follows later
// changes of the CPU limit (a container's quota).
func widen() {
	if narrowed.Load() {
		runtime.SetDefaultGOMAXPROCS()
		narrowed.Store(false)
		changed(false)
	}
}

// changed is told of every switch; tests watch it.
var changed = func(narrow bool) {}

// reader takes readings; it keeps the runtime metrics' samples between
// them so that reading does not allocate.
type reader struct {
	sample []metrics.Sample
}

// samples are the runtime metrics a reading takes; the scheduler's
// latencies come first, then the heap's figures in heapState's order,
// then the GC percentage.
var samples = []string{"/sched/latencies:seconds", "/gc/cycles/total:gc-cycles",
	"/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes", "/gc/heap/goal:bytes", "/gc/gogc:percent"}

// read takes a reading now; a wait counts as queued from queued on.
func (r *reader) read(queued time.Duration) reading {
	now := reading{at: time.Now(), costly: costly.Load()}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		now.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if r.sample == nil {
		r.sample = make([]metrics.Sample, len(samples))
		for i, name := range samples {
			r.sample[i].Name = name
		}
	}
	metrics.Read(r.sample)
	hs := &now.heap
	for i, v := range []*uint64{&hs.cycles, &hs.inUse, &hs.live, &hs.goal} {
		if s := r.sample[i+1].Value; s.Kind() == metrics.KindUint64 {
			*v = s.Uint64()
		}
	}
	// The runtime reports a percentage of -1 (off) as a uint64.
	if s := r.sample[5].Value; s.Kind() == metrics.KindUint64 {
		hs.off = int64(s.Uint64()) < 0
	}
	if r.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return now
	}
	h := r.sample[0].Value.Float64Histogram()
	from := queued.Seconds()
	for i, n := range h.Counts {
		now.waits += n
		if h.Buckets[i] >= from {
			now.queued += n
		}
	}
	return now
}
