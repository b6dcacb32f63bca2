package redisstate

import "sync/atomic"

// op names a kind of call, for the metrics (a closed set of labels).
type op string

// The calls.
const (
	opReserve    op = "reserve"    // the limiter's check of an attempt
	opFinish     op = "finish"     // the limiter's end of an attempt
	opReset      op = "reset"      // authd penalty reset
	opGeneration op = "generation" // an L1 entry's generation check
	opLoad       op = "load"       // an L2 read
	opSave       op = "save"       // an L2 write
	opInvalidate op = "invalidate" // a cache flush
	numOps          = 7
)

var opIndex = map[op]int{opReserve: 0, opFinish: 1, opReset: 2, opGeneration: 3, opLoad: 4, opSave: 5, opInvalidate: 6}

// Ops lists the call names, for metric labels.
func Ops() []string {
	return []string{string(opReserve), string(opFinish), string(opReset), string(opGeneration), string(opLoad), string(opSave), string(opInvalidate)}
}

type opCounters [numOps]atomic.Int64

func (c *opCounters) at(o op) *atomic.Int64 { return &c[opIndex[o]] }

// counters are the client's statistics.
type counters struct {
	calls, errors, skipped byOp
	opened, closed         atomic.Int64 // breaker transitions
	probes                 atomic.Int64
	messages, resubscribes atomic.Int64
	dropped                atomic.Int64 // announcements that could not be read
}

// byOp is a counter per op.
type byOp struct{ c opCounters }

func (b *byOp) get(o op) *atomic.Int64 { return b.c.at(o) }

// Stats are the client's counters, for the metrics.
type Stats struct {
	Up bool // the breaker is closed
	// Calls, Errors and Skipped count per op (Ops order): calls made,
	// calls that failed, and calls not made because the breaker was open.
	Calls, Errors, Skipped [numOps]int64
	// Opened and Closed count the breaker's transitions.
	Opened, Closed int64
	Probes         int64
	// Messages counts announcements received; Resubscribes the
	// subscriptions (re)made, each of which emptied the local cache.
	Messages, Resubscribes int64
	// Outbox is how many flushes wait to be delivered.
	Outbox int
	// FinishPending is how many ends of attempts are queued or being
	// sent (give-backs, known-good marks, failed password hashes).
	FinishPending int64
	// HeldGiveBacks is how many give-backs wait for Redis to answer
	// again; DroppedGiveBacks how many could not be held (giveback.go).
	HeldGiveBacks    int
	DroppedGiveBacks int64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	st := Stats{Up: c.Up(), Opened: c.stats.opened.Load(), Closed: c.stats.closed.Load(), Probes: c.stats.probes.Load(),
		Messages: c.stats.messages.Load(), Resubscribes: c.stats.resubscribes.Load(), Outbox: c.outbox.size(),
		FinishPending: c.finishPending.Load()}
	st.HeldGiveBacks, st.DroppedGiveBacks = c.held.stats()
	for i := range numOps {
		st.Calls[i] = c.stats.calls.c[i].Load()
		st.Errors[i] = c.stats.errors.c[i].Load()
		st.Skipped[i] = c.stats.skipped.c[i].Load()
	}
	return st
}
