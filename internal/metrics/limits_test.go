package metrics_test

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/metrics"
)

// Every limit's counter is exported with a closed label set, passes
// promlint and is documented.
func TestLimitsMetrics(t *testing.T) {
	st := metrics.LimitStats{DovecotRefused: 1, GRPCRefused: 2, Overdue: 3, DovecotDelayOverflow: 4, GRPCDelayOverflow: 5, TooLarge: 6}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.LimitsCollector(func() metrics.LimitStats { return st }))
	series := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"authd_connections_refused_total", []string{"protocol", "dovecot"}, 1},
		{"authd_connections_refused_total", []string{"protocol", "grpc"}, 2},
		{"authd_requests_overdue_total", nil, 3},
		{"authd_failure_delay_overflow_total", []string{"protocol", "dovecot"}, 4},
		{"authd_failure_delay_overflow_total", []string{"protocol", "grpc"}, 5},
		{"authd_replies_too_large_total", nil, 6},
	}
	for _, s := range series {
		if got := value(t, reg, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range series {
		if !strings.Contains(string(doc), "`"+s.name+"`") {
			t.Errorf("%s is not in docs/metrics.md", s.name)
		}
	}
}

// The verify queue's sheds are counted by reason, every reason from 0.
func TestVerifyShedMetric(t *testing.T) {
	f := newFixture(t)
	for _, r := range engine.ShedReasons() {
		if got := value(t, f.reg, "authd_verify_shed_total", "reason", r); got != 0 {
			t.Fatalf("reason %s starts at %v, want a 0 series", r, got)
		}
	}
	f.m.VerifyShed(engine.ShedWait)
	f.m.VerifyShed("mallory@example.com")
	if got := value(t, f.reg, "authd_verify_shed_total", "reason", engine.ShedWait); got != 1 {
		t.Errorf("wait = %v, want 1", got)
	}
	if got := value(t, f.reg, "authd_verify_shed_total", "reason", "other"); got != 1 {
		t.Errorf("an unknown reason = %v, want 1 under other", got)
	}
}
