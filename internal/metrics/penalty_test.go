package metrics_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/metrics"
)

// The brute-force defence's counters are exported by key kind, and only
// while it is on.
func TestPenaltyMetrics(t *testing.T) {
	lim := limiter.New(limiter.Config{IP: limiter.Budget{Failures: 2, Window: time.Minute}})
	on := true
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, metrics.Options{Penalty: func() (limiter.Stats, bool) { return lim.Stats(), on }}); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.1")
	for i := range 4 {
		lim.Begin(limiter.Request{Account: "a", IP: ip, Password: []byte{byte(i)}}).Done(limiter.Failed)
	}
	for name, want := range map[string]float64{
		"authd_penalty_refusals_total": 2, "authd_penalty_blocks_total": 1, "authd_penalty_refusing_keys": 1,
	} {
		if got := value(t, reg, name, "kind", "ip"); got != want {
			t.Errorf("%s{kind=ip} = %v, want %v", name, got, want)
		}
	}
	if got := value(t, reg, "authd_penalty_refusals_total", "kind", "account"); got != 0 {
		t.Errorf("refusals{kind=account} = %v, want a 0 series", got)
	}
	if got := value(t, reg, "authd_penalty_tracked_keys"); got < 3 {
		t.Errorf("tracked keys %v", got)
	}
	// A known-good pair's eleventh login in flight waits for a turn,
	// here in vain (its request has ended).
	lim.Begin(limiter.Request{Account: "owner", IP: ip}).Done(limiter.Succeeded)
	for range 10 {
		lim.Begin(limiter.Request{Account: "owner", IP: ip})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	lim.BeginContext(ctx, limiter.Request{Account: "owner", IP: ip})
	for _, name := range []string{"authd_penalty_inflight_waits_total", "authd_penalty_inflight_busy_total"} {
		if got := value(t, reg, name); got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
	on = false
	if got := value(t, reg, "authd_penalty_tracked_keys"); got != -1 {
		t.Errorf("exported while off: %v", got)
	}
}
