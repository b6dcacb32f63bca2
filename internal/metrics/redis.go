package metrics

import "github.com/prometheus/client_golang/prometheus"

// RedisStats are the shared state's counters (internal/redisstate and the
// cache's second level), as the daemon reads them at scrape time.
type RedisStats struct {
	Up bool // the circuit breaker is closed: calls go to Redis
	// Ops names the kinds of call; Calls, Errors and Skipped are in the
	// same order: calls made, calls that failed, calls not made because
	// the breaker was open.
	Ops                    []string
	Calls, Errors, Skipped []int64
	Opened, Closed         int64 // breaker transitions
	Messages               int64 // announcements received from other processes
	Resubscribes           int64 // subscriptions (re)made, each emptying the local cache
	Outbox                 int   // flushes waiting for Redis
	// The cache's second level.
	L2Hits, L2Misses, L1Dropped int64
	// ReplayPending is how many failures counted alone wait to be
	// replayed into the shared budgets.
	ReplayPending int
}

// RedisCollector exports the shared state's counters; get's ok is false
// when no redis { } is configured (nothing is exported then).
func RedisCollector(get func() (RedisStats, bool)) prometheus.Collector {
	return &redisCollector{get: get}
}

type redisCollector struct {
	get func() (RedisStats, bool)
}

var (
	redisUp = prometheus.NewDesc("authd_redis_up",
		"1 while calls go to Redis (the circuit breaker is closed), 0 while authd works alone.", nil, nil)
	redisCalls = prometheus.NewDesc("authd_redis_calls_total",
		"Calls to Redis by kind (reserve, finish, reset, generation, load, save, invalidate) and result (ok, error; skipped: not made, the breaker was open).", []string{"op", "result"}, nil)
	redisTransitions = prometheus.NewDesc("authd_redis_breaker_transitions_total",
		"Times the circuit breaker opened (a call failed) or closed (a probe succeeded).", []string{"to"}, nil)
	redisMessages = prometheus.NewDesc("authd_redis_messages_total",
		"Announcements received from other authd processes (flushes, refusals, resets).", nil, nil)
	redisResubscribes = prometheus.NewDesc("authd_redis_subscriptions_total",
		"Subscriptions to the announcement channels made or remade; each emptied the local cache.", nil, nil)
	redisOutbox = prometheus.NewDesc("authd_redis_outbox_flushes",
		"Cache flushes made while Redis was unreachable, waiting to be announced.", nil, nil)
	redisL2 = prometheus.NewDesc("authd_cache_shared_lookups_total",
		"Local cache misses looked up in the shared cache, by result (hit, miss).", []string{"result"}, nil)
	redisDropped = prometheus.NewDesc("authd_cache_shared_dropped_total",
		"Local cache entries dropped when about to be used, because another process had flushed their user.", nil, nil)
	redisReplay = prometheus.NewDesc("authd_penalty_replay_pending",
		"Failures counted while Redis was unreachable, waiting to be added to the shared budgets.", nil, nil)
)

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{redisUp, redisCalls, redisTransitions, redisMessages, redisResubscribes, redisOutbox, redisL2, redisDropped, redisReplay} {
		ch <- d
	}
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.get()
	if !ok {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	up := 0.0
	if st.Up {
		up = 1
	}
	gauge(redisUp, up)
	for i, op := range st.Ops {
		if i < len(st.Calls) && i < len(st.Errors) && i < len(st.Skipped) {
			counter(redisCalls, st.Calls[i]-st.Errors[i], op, "ok")
			counter(redisCalls, st.Errors[i], op, "error")
			counter(redisCalls, st.Skipped[i], op, "skipped")
		}
	}
	counter(redisTransitions, st.Opened, "open")
	counter(redisTransitions, st.Closed, "closed")
	counter(redisMessages, st.Messages)
	counter(redisResubscribes, st.Resubscribes)
	gauge(redisOutbox, float64(st.Outbox))
	counter(redisL2, st.L2Hits, "hit")
	counter(redisL2, st.L2Misses, "miss")
	counter(redisDropped, st.L1Dropped)
	gauge(redisReplay, float64(st.ReplayPending))
}
