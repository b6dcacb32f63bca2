package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// LimitStats are the counters of the limits on what clients can make
// authd hold (docs/operations.md §8), read at scrape time. Every field is
// monotonic for the life of the process.
type LimitStats struct {
	// DovecotRefused and GRPCRefused: connections closed as soon as they
	// were accepted because their listener served its maximum.
	DovecotRefused, GRPCRefused int64
	// Overdue: requests on the Dovecot sockets answered with a temporary
	// failure because they outlived their deadline.
	Overdue int64
	// DovecotDelayOverflow and GRPCDelayOverflow: failures answered at
	// once, without auth_failure_delay, because the most answers the
	// failure-delay queue holds were waiting already.
	DovecotDelayOverflow, GRPCDelayOverflow int64
	// TooLarge: master-socket replies longer than Dovecot's clients can
	// read, answered with a temporary failure instead.
	TooLarge int64
}

// LimitsCollector exports LimitStats from get. The one label, protocol,
// is a closed set: dovecot (every unix socket) or grpc.
func LimitsCollector(get func() LimitStats) prometheus.Collector {
	return &limitsCollector{get: get}
}

type limitsCollector struct {
	get func() LimitStats
}

var (
	limitsRefused = prometheus.NewDesc("authd_connections_refused_total",
		"Connections closed as soon as they were accepted because their listener served its maximum, by protocol (dovecot, grpc).", []string{"protocol"}, nil)
	limitsOverdue = prometheus.NewDesc("authd_requests_overdue_total",
		"Requests on the Dovecot sockets answered with a temporary failure because they outlived their deadline.", nil, nil)
	limitsOverflow = prometheus.NewDesc("authd_failure_delay_overflow_total",
		"Failures answered at once, without auth_failure_delay, because the failure-delay queue was full, by protocol (dovecot, grpc).", []string{"protocol"}, nil)
	limitsTooLarge = prometheus.NewDesc("authd_replies_too_large_total",
		"Master-socket replies longer than Dovecot's clients can read (8192 bytes), answered with a temporary failure instead.", nil, nil)
)

func (c *limitsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{limitsRefused, limitsOverdue, limitsOverflow, limitsTooLarge} {
		ch <- d
	}
}

func (c *limitsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.get()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(limitsRefused, st.DovecotRefused, "dovecot")
	counter(limitsRefused, st.GRPCRefused, "grpc")
	counter(limitsOverdue, st.Overdue)
	counter(limitsOverflow, st.DovecotDelayOverflow, "dovecot")
	counter(limitsOverflow, st.GRPCDelayOverflow, "grpc")
	counter(limitsTooLarge, st.TooLarge)
}
