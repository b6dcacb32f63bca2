package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/internal/limiter"
)

// penaltyCollector reads the brute-force defence's counters at scrape
// time. The kind label is the key kind (ip, prefix, account, pair), a
// closed set: no address or account ever becomes a label.
type penaltyCollector struct {
	get func() (limiter.Stats, bool)
}

var (
	penaltyRefusals = prometheus.NewDesc("authd_penalty_refusals_total",
		"Attempts refused before any lookup because a key was over its failure budget, by the kind of that key.", []string{"kind"}, nil)
	penaltyBlocks = prometheus.NewDesc("authd_penalty_blocks_total",
		"Times a key started refusing attempts, by kind.", []string{"kind"}, nil)
	penaltyRefusing = prometheus.NewDesc("authd_penalty_refusing_keys",
		"Keys refusing attempts now, by kind.", []string{"kind"}, nil)
	penaltyKeys = prometheus.NewDesc("authd_penalty_tracked_keys",
		"Keys the brute-force defence tracks now.", nil, nil)
	penaltyEvicted = prometheus.NewDesc("authd_penalty_evicted_keys_total",
		"Keys forgotten, least recently used first, to stay within max_keys.", nil, nil)
	penaltyWaits = prometheus.NewDesc("authd_penalty_inflight_waits_total",
		"Logins of a known-good account and network that waited for one of its logins in flight to end.", nil, nil)
	penaltyBusy = prometheus.NewDesc("authd_penalty_inflight_busy_total",
		"Logins that waited in vain for a turn and were answered as temporary failures.", nil, nil)
)

func (c *penaltyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{penaltyRefusals, penaltyBlocks, penaltyRefusing, penaltyKeys, penaltyEvicted, penaltyWaits, penaltyBusy} {
		ch <- d
	}
}

func (c *penaltyCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.get()
	if !ok {
		return
	}
	for _, k := range limiter.Kinds() {
		ch <- prometheus.MustNewConstMetric(penaltyRefusals, prometheus.CounterValue, float64(st.Refusals[k]), k.String())
		ch <- prometheus.MustNewConstMetric(penaltyBlocks, prometheus.CounterValue, float64(st.Blocks[k]), k.String())
		ch <- prometheus.MustNewConstMetric(penaltyRefusing, prometheus.GaugeValue, float64(st.Blocked[k]), k.String())
	}
	ch <- prometheus.MustNewConstMetric(penaltyKeys, prometheus.GaugeValue, float64(st.Keys))
	ch <- prometheus.MustNewConstMetric(penaltyEvicted, prometheus.CounterValue, float64(st.Evicted))
	ch <- prometheus.MustNewConstMetric(penaltyWaits, prometheus.CounterValue, float64(st.Waits))
	ch <- prometheus.MustNewConstMetric(penaltyBusy, prometheus.CounterValue, float64(st.Busy))
}
