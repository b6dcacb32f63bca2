package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/internal/metrics"
	"github.com/authd-project/authd/internal/policy"
)

// The policy client's counters are exported with closed label sets, and
// only while a policy server is configured.
func TestPolicyMetrics(t *testing.T) {
	st := policy.Stats{AllowOK: 5, AllowFailed: 2, ReportOK: 6, ReportFailed: 1, Allowed: 3, Delayed: 1, Refused: 1, ReportsDropped: 4, Queued: 7}
	on := true
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.PolicyCollector(func() (policy.Stats, bool) { return st, on }))
	series := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"authd_policy_requests_total", []string{"command", "allow", "result", "ok"}, 5},
		{"authd_policy_requests_total", []string{"command", "allow", "result", "error"}, 2},
		{"authd_policy_requests_total", []string{"command", "report", "result", "ok"}, 6},
		{"authd_policy_requests_total", []string{"command", "report", "result", "error"}, 1},
		{"authd_policy_verdicts_total", []string{"verdict", "allow"}, 3},
		{"authd_policy_verdicts_total", []string{"verdict", "delay"}, 1},
		{"authd_policy_verdicts_total", []string{"verdict", "refuse"}, 1},
		{"authd_policy_reports_dropped_total", nil, 4},
		{"authd_policy_report_queue_length", nil, 7},
	}
	for _, s := range series {
		if got := value(t, reg, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	on = false
	if got := value(t, reg, "authd_policy_reports_dropped_total"); got != -1 {
		t.Errorf("exported without a policy server: %v", got)
	}
}
