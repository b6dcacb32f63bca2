package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/internal/policy"
)

// PolicyCollector exports the auth policy server client's counters, read
// at scrape time from get (ok false: no policy server, nothing exported).
// Every label is a closed set: command (allow, report), result (ok,
// error), verdict (allow, delay, refuse).
func PolicyCollector(get func() (policy.Stats, bool)) prometheus.Collector {
	return &policyCollector{get: get}
}

type policyCollector struct {
	get func() (policy.Stats, bool)
}

var (
	policyRequests = prometheus.NewDesc("authd_policy_requests_total",
		"Requests to the auth policy server by command (allow, report) and result (ok; error: no usable answer in time).", []string{"command", "result"}, nil)
	policyVerdicts = prometheus.NewDesc("authd_policy_verdicts_total",
		"Answers of the auth policy server to command=allow by verdict (allow, delay, refuse), applied or not (log-only mode).", []string{"verdict"}, nil)
	policyDropped = prometheus.NewDesc("authd_policy_reports_dropped_total",
		"Reports to the auth policy server not sent: the queue was full, or authd was stopping.", nil, nil)
	policyQueued = prometheus.NewDesc("authd_policy_report_queue_length",
		"Reports waiting to be sent to the auth policy server.", nil, nil)
)

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{policyRequests, policyVerdicts, policyDropped, policyQueued} {
		ch <- d
	}
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.get()
	if !ok {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(policyRequests, st.AllowOK, "allow", "ok")
	counter(policyRequests, st.AllowFailed, "allow", "error")
	counter(policyRequests, st.ReportOK, "report", "ok")
	counter(policyRequests, st.ReportFailed, "report", "error")
	counter(policyVerdicts, st.Allowed, "allow")
	counter(policyVerdicts, st.Delayed, "delay")
	counter(policyVerdicts, st.Refused, "refuse")
	counter(policyDropped, st.ReportsDropped)
	ch <- prometheus.MustNewConstMetric(policyQueued, prometheus.GaugeValue, float64(st.Queued))
}
