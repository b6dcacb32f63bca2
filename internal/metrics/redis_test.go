package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/internal/metrics"
)

// The shared state's counters are exported with closed label sets, and
// only while redis { } is configured.
func TestRedisMetrics(t *testing.T) {
	st := metrics.RedisStats{Up: true, Ops: []string{"reserve", "load"}, Calls: []int64{10, 4}, Errors: []int64{2, 0},
		Skipped: []int64{5, 1}, Opened: 3, Closed: 2, Messages: 7, Resubscribes: 2, Outbox: 1,
		L2Hits: 9, L2Misses: 4, L1Dropped: 6, ReplayPending: 8}
	on := true
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.RedisCollector(func() (metrics.RedisStats, bool) { return st, on }))
	series := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"authd_redis_up", nil, 1},
		{"authd_redis_calls_total", []string{"op", "reserve", "result", "ok"}, 8},
		{"authd_redis_calls_total", []string{"op", "reserve", "result", "error"}, 2},
		{"authd_redis_calls_total", []string{"op", "reserve", "result", "skipped"}, 5},
		{"authd_redis_calls_total", []string{"op", "load", "result", "skipped"}, 1},
		{"authd_redis_breaker_transitions_total", []string{"to", "open"}, 3},
		{"authd_redis_breaker_transitions_total", []string{"to", "closed"}, 2},
		{"authd_redis_messages_total", nil, 7},
		{"authd_redis_subscriptions_total", nil, 2},
		{"authd_redis_outbox_flushes", nil, 1},
		{"authd_cache_shared_lookups_total", []string{"result", "hit"}, 9},
		{"authd_cache_shared_lookups_total", []string{"result", "miss"}, 4},
		{"authd_cache_shared_dropped_total", nil, 6},
		{"authd_penalty_replay_pending", nil, 8},
	}
	for _, s := range series {
		if got := value(t, reg, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	st.Up = false
	if got := value(t, reg, "authd_redis_up"); got != 0 {
		t.Errorf("authd_redis_up with the breaker open: %v", got)
	}
	on = false
	if got := value(t, reg, "authd_redis_up"); got != -1 {
		t.Errorf("exported without redis { }: %v", got)
	}
}
