package policy

import "sync/atomic"

// Stats are the client's counters, for the metrics.
type Stats struct {
	// Requests counts finished requests by command (allow, report) and
	// result (ok: answered; error: no usable answer).
	AllowOK, AllowFailed, ReportOK, ReportFailed uint64
	// Verdicts of well-formed answers to allow, before log-only mode.
	Allowed, Delayed, Refused uint64
	// ReportsDropped counts reports not sent: the queue was full, or the
	// client was stopping.
	ReportsDropped uint64
	// Queued is how many reports wait now.
	Queued int
}

const (
	cmdAllow = iota
	cmdReport
)

const (
	resOK = iota
	resError
)

type counters struct {
	requests [2][2]atomic.Uint64
	verdicts [3]atomic.Uint64 // allow, delay, refuse
	dropped  atomic.Uint64
}

func (c *counters) verdict(status int) {
	switch {
	case status < 0:
		c.verdicts[2].Add(1)
	case status > 0:
		c.verdicts[1].Add(1)
	default:
		c.verdicts[0].Add(1)
	}
}

// Stats returns the counters now.
func (c *Client) Stats() Stats {
	s := &c.stats
	return Stats{
		AllowOK: s.requests[cmdAllow][resOK].Load(), AllowFailed: s.requests[cmdAllow][resError].Load(),
		ReportOK: s.requests[cmdReport][resOK].Load(), ReportFailed: s.requests[cmdReport][resError].Load(),
		Allowed: s.verdicts[0].Load(), Delayed: s.verdicts[1].Load(), Refused: s.verdicts[2].Load(),
		ReportsDropped: s.dropped.Load(),
		Queued:         len(c.queue),
	}
}
