// Package metrics holds authd's Prometheus collectors and its small HTTP
// endpoint (/metrics, /healthz, /readyz).
//
// Everything is built against a registry the caller passes in, never the
// global one, so tests get a fresh registry each and the daemon decides
// what it exposes. Metric names follow authd_<subsystem>_<name>_<unit>;
// every label takes its values from a closed set (protocols, mechanisms,
// drivers, schemes, statuses, listener names from the configuration), and
// no label ever carries a user name, an IP address or anything else a
// client controls (docs/architecture.md, house rules 3 and 10). docs/metrics.md lists
// every metric.
//
// A *Metrics is the one sink for every layer: it implements
// engine.Observer (passdb/userdb lookups, scheme verification), the
// grpcserver Observer, and hands out the observe functions the Dovecot
// client and master servers take. Values that already live elsewhere (the
// cache's counters, the failure-delay queues, the panic counter) are read
// at scrape time through functions, so that a configuration reload, which
// replaces the engine and its cache, needs no re-registration.
package metrics

import (
	"runtime"
	"slices"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/schemes"
)

// CacheStats are the auth cache's counters as the metrics need them. The
// caller copies them from cache.Stats; keeping a struct of our own means
// this package does not depend on the cache package.
type CacheStats struct {
	Hits, Misses, NegativeHits, StaleHits, Evictions int64 // monotonic counters
	Entries, Bytes, MaxBytes                         int64 // current values
}

// Options are the values New reads at scrape time. Every function may be
// nil; its metrics are then not exported. The functions are called from
// the HTTP handler's goroutine, so they must be safe for concurrent use
// (the daemon reads its current instance through an atomic pointer).
type Options struct {
	// Version is reported by authd_build_info.
	Version string
	// Cache returns the current configuration's cache counters; ok is
	// false when the cache is off, and then no cache series are exported.
	Cache func() (st CacheStats, ok bool)
	// DelayedFailures returns how many failed requests wait for
	// auth_failure_delay right now, over every client listener and gRPC.
	DelayedFailures func() int
	// Panics returns how many panics the protocol layers recovered
	// (dovecot.Shared.Stats.Panics, which the gRPC server also counts into).
	Panics func() int64
	// Ready reports whether every backend answered its last check (nil
	// error). It drives /readyz and authd_ready.
	Ready func() error
	// Penalty returns the brute-force defence's counters; ok is false
	// when it is off.
	Penalty func() (st limiter.Stats, ok bool)
}

// Bucket layouts, in seconds. Requests include backend time and password
// hashing but never the failure delay; lookups span a cached passwd-file
// (µs) to a slow LDAP server; schemes span PLAIN (sub-µs) to argon2/bcrypt
// at high cost (hundreds of ms).
var (
	requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	lookupBuckets  = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	verifyBuckets  = []float64{.00001, .0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// Metrics is the collector set of one process.
type Metrics struct {
	// Resolved collectors of the per-login metrics (memo.go).
	authMemo   memo[authKey, countTime]
	passdbMemo memo[[2]string, countTime]
	verifyMemo memo[string, prometheus.Observer]

	authRequests   *prometheus.CounterVec
	authDuration   *prometheus.HistogramVec
	lookupRequests *prometheus.CounterVec
	lookupDuration *prometheus.HistogramVec
	passdbLookups  *prometheus.CounterVec
	passdbDuration *prometheus.HistogramVec
	userdbLookups  *prometheus.CounterVec
	userdbDuration *prometheus.HistogramVec
	verifyDuration *prometheus.HistogramVec
	overBudget     *prometheus.CounterVec
	verifyShed     *prometheus.CounterVec
	connections    *prometheus.GaugeVec
	reloads        *prometheus.CounterVec
	lastReload     prometheus.Gauge

	// Free-form label values (driver and listener names, mechanisms)
	// come from the configuration and the code, not from clients, but
	// are still capped so that a bug cannot explode the series count.
	drivers, listeners, mechs, schemes labelSet

	reg   *prometheus.Registry
	ready func() error
}

// The label sets whose values are fixed here.
var (
	authProtocols   = []string{"client", "login", "grpc"}
	lookupProtocols = []string{"master", "userdb", "grpc"}
	lookupCommands  = []string{"user", "pass", "list", "request", "cache_flush"}
	// The names of backends.Outcome, and "error" (could not tell).
	passdbResults = []string{"found", "notfound", "disabled", "expired", "nocredentials", "mismatch", "error"}
	userdbResults = []string{"found", "notfound", "error"}
)

// New creates the collectors and registers them, with the Go runtime and
// process collectors, on reg.
func New(reg *prometheus.Registry, o Options) (*Metrics, error) {
	m := newMetrics(reg, o)
	m.lastReload.SetToCurrentTime()

	cs := []prometheus.Collector{
		m.authRequests, m.authDuration, m.lookupRequests, m.lookupDuration,
		m.passdbLookups, m.passdbDuration, m.userdbLookups, m.userdbDuration,
		m.verifyDuration, m.overBudget, m.verifyShed, m.connections, m.reloads, m.lastReload,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "authd_build_info",
			Help:        "Always 1; the labels tell the authd and Go versions.",
			ConstLabels: prometheus.Labels{"version": o.Version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	}
	cs = append(cs, optionalCollectors(o)...)
	m.precreate()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// precreate makes the series of closed label sets, so that rate() and
// absent()-style alerts see a 0 before the first event instead of no
// series at all.
func (m *Metrics) precreate() {
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	for _, p := range schemes.BudgetParams() {
		m.overBudget.WithLabelValues(p.Scheme, p.Param)
	}
	for _, r := range engine.ShedReasons() {
		m.verifyShed.WithLabelValues(r)
	}
}

// optionalCollectors are the collectors of the state Options can read.
func optionalCollectors(o Options) []prometheus.Collector {
	var cs []prometheus.Collector
	if o.DelayedFailures != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_auth_failure_delay_queue_length",
			Help: "Failed authentications waiting for auth_failure_delay before their answer is sent.",
		}, func() float64 { return float64(o.DelayedFailures()) }))
	}
	if o.Panics != nil {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "authd_panics_recovered_total",
			Help: "Panics recovered in connection and request handlers; the process kept serving.",
		}, func() float64 { return float64(o.Panics()) }))
	}
	if o.Ready != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "authd_ready",
			Help: "1 when every backend answered its last check (the /readyz condition), else 0.",
		}, func() float64 {
			if o.Ready() != nil {
				return 0
			}
			return 1
		}))
	}
	if o.Cache != nil {
		cs = append(cs, &cacheCollector{get: o.Cache})
	}
	if o.Penalty != nil {
		cs = append(cs, &penaltyCollector{get: o.Penalty})
	}
	return cs
}

// newMetrics creates the collectors the Observe methods feed.
func newMetrics(reg *prometheus.Registry, o Options) *Metrics {
	return &Metrics{
		authRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_auth_requests_total",
			Help: "Finished authentication requests (client and login sockets, gRPC Authenticate) by protocol, SASL mechanism and result.",
		}, []string{"protocol", "mechanism", "result"}),
		authDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authd_auth_request_duration_seconds",
			Help:    "Time from an authentication request's start to its result, without the failure delay.",
			Buckets: requestBuckets,
		}, []string{"protocol", "mechanism"}),
		lookupRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_lookup_requests_total",
			Help: "Finished master-protocol and gRPC lookup requests (USER, PASS, LIST, REQUEST, CACHE-FLUSH) by protocol, command and result.",
		}, []string{"protocol", "command", "result"}),
		lookupDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authd_lookup_request_duration_seconds",
			Help:    "Time to answer a master-protocol or gRPC lookup request.",
			Buckets: requestBuckets,
		}, []string{"protocol", "command"}),
		passdbLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_passdb_lookups_total",
			Help: "Passdb backend calls by driver and result (found, notfound, disabled, expired, nocredentials, mismatch, error).",
		}, []string{"driver", "result"}),
		passdbDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authd_passdb_lookup_duration_seconds",
			Help:    "Passdb backend lookup latency by driver.",
			Buckets: lookupBuckets,
		}, []string{"driver"}),
		userdbLookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_userdb_lookups_total",
			Help: "Userdb backend calls by driver and result (found, notfound, error).",
		}, []string{"driver", "result"}),
		userdbDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authd_userdb_lookup_duration_seconds",
			Help:    "Userdb backend lookup latency by driver.",
			Buckets: lookupBuckets,
		}, []string{"driver"}),
		verifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "authd_scheme_verify_duration_seconds",
			Help:    "Password hash verification time by scheme; _count is the number of verifications.",
			Buckets: verifyBuckets,
		}, []string{"scheme"}),
		overBudget: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_hash_over_budget_total",
			Help: "Stored password hashes refused before any work because a cost parameter is over its limit (a temporary failure), by scheme family and parameter.",
		}, []string{"scheme", "param"}),
		verifyShed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_verify_shed_total",
			Help: "Password verifications not made because the verify workers were overloaded (a temporary failure), by reason (queue_full, wait).",
		}, []string{"reason"}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "authd_connections_open",
			Help: "Client connections open now, by listener (socket name, or grpc).",
		}, []string{"listener"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authd_config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result (success, failure).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authd_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful configuration load (start or reload).",
		}),
		drivers:   newLabelSet(32),
		listeners: newLabelSet(64),
		mechs:     newLabelSet(32),
		schemes:   newLabelSet(64),
		reg:       reg,
		ready:     o.Ready,
	}
}

// Verify implements engine.Observer: one password hash verification.
func (m *Metrics) Verify(scheme string, d time.Duration) {
	m.verifyMemo.get(scheme, func(scheme string) prometheus.Observer {
		return m.verifyDuration.WithLabelValues(m.schemes.get(scheme))
	}).Observe(d.Seconds())
}

// HashOverBudget implements engine.Observer: a stored hash over the cost
// budget. The pair comes from schemes.BudgetParams; anything else (a bug)
// is counted as other/other rather than growing the label set.
func (m *Metrics) HashOverBudget(scheme, param string) {
	if !slices.Contains(schemes.BudgetParams(), schemes.BudgetParam{Scheme: scheme, Param: param}) {
		scheme, param = "other", "other"
	}
	m.overBudget.WithLabelValues(scheme, param).Inc()
}

// VerifyShed implements engine.Observer: a verification the verify queue
// shed. reason comes from engine.ShedReasons; anything else is "other".
func (m *Metrics) VerifyShed(reason string) {
	m.verifyShed.WithLabelValues(closed(reason, engine.ShedReasons())).Inc()
}

// PassdbLookup implements engine.Observer: one passdb backend call.
func (m *Metrics) PassdbLookup(driver, result string, d time.Duration) {
	o := m.passdbMemo.get([2]string{driver, result}, func(k [2]string) countTime {
		driver := m.drivers.get(k[0])
		return countTime{m.passdbLookups.WithLabelValues(driver, closed(k[1], passdbResults)), m.passdbDuration.WithLabelValues(driver)}
	})
	o.count.Inc()
	o.time.Observe(d.Seconds())
}

// UserdbLookup implements engine.Observer: one userdb backend call.
func (m *Metrics) UserdbLookup(driver, result string, d time.Duration) {
	driver = m.drivers.get(driver)
	m.userdbLookups.WithLabelValues(driver, closed(result, userdbResults)).Inc()
	m.userdbDuration.WithLabelValues(driver).Observe(d.Seconds())
}

var _ engine.Observer = (*Metrics)(nil)

// AuthRequest counts one finished authentication. protocol is client,
// login or grpc; mech the SASL mechanism (PLAIN for gRPC).
func (m *Metrics) AuthRequest(protocol, mech string, st engine.Status, d time.Duration) {
	o := m.authMemo.get(authKey{protocol, mech, st}, func(k authKey) countTime {
		protocol, mech := closed(k.protocol, authProtocols), m.mechs.get(k.mech)
		return countTime{m.authRequests.WithLabelValues(protocol, mech, k.st.String()), m.authDuration.WithLabelValues(protocol, mech)}
	})
	o.count.Inc()
	o.time.Observe(d.Seconds())
}

type authKey struct {
	protocol, mech string
	st             engine.Status
}

// LookupRequest counts one finished lookup. protocol is master, userdb or
// grpc; command is user, pass, list, request or cache_flush.
func (m *Metrics) LookupRequest(protocol, command string, st engine.Status, d time.Duration) {
	protocol = closed(protocol, lookupProtocols)
	command = closed(command, lookupCommands)
	m.lookupRequests.WithLabelValues(protocol, command, st.String()).Inc()
	m.lookupDuration.WithLabelValues(protocol, command).Observe(d.Seconds())
}

// ClientObserver returns the function for dovecot.ClientConfig.Observe of
// a client ("client") or login ("login") listener.
func (m *Metrics) ClientObserver(protocol string) func(mech string, status engine.Status, d time.Duration) {
	return func(mech string, status engine.Status, d time.Duration) {
		m.AuthRequest(protocol, mech, status, d)
	}
}

// MasterObserver returns an observe function for an auth-master
// ("master") or auth-userdb ("userdb") listener. command is the master
// protocol command in lower case (user, pass, list, request,
// cache_flush).
func (m *Metrics) MasterObserver(protocol string) func(command string, status engine.Status, d time.Duration) {
	return func(command string, status engine.Status, d time.Duration) {
		m.LookupRequest(protocol, command, status, d)
	}
}

// ConnOpened counts a new connection on listener (its configured name,
// or "grpc"). Every ConnOpened needs one ConnClosed.
func (m *Metrics) ConnOpened(listener string) {
	m.connections.WithLabelValues(m.listeners.get(listener)).Inc()
}

// ConnClosed is the end of a connection ConnOpened counted.
func (m *Metrics) ConnClosed(listener string) {
	m.connections.WithLabelValues(m.listeners.get(listener)).Dec()
}

// ConfigReload records the outcome of a SIGHUP reload.
func (m *Metrics) ConfigReload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("success").Inc()
		m.lastReload.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues("failure").Inc()
}

// closed returns v when it is one of allowed, else "other".
func closed(v string, allowed []string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return "other"
}

// labelSet admits the first max distinct well-formed values of a label and
// maps everything after them to "other": a guard against a series
// explosion should a caller ever pass something open-ended.
type labelSet struct {
	mu   sync.RWMutex
	seen map[string]struct{}
	max  int
}

func newLabelSet(max int) labelSet { return labelSet{seen: map[string]struct{}{}, max: max} }

func (s *labelSet) get(v string) string {
	s.mu.RLock()
	_, ok := s.seen[v]
	s.mu.RUnlock()
	if ok {
		return v
	}
	if !wellFormed(v) {
		return "other"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[v]; ok {
		return v
	}
	if len(s.seen) >= s.max {
		return "other"
	}
	s.seen[v] = struct{}{}
	return v
}

// wellFormed accepts short printable ASCII: driver, scheme and mechanism
// names and socket paths all are.
func wellFormed(v string) bool {
	if v == "" || len(v) > 128 {
		return false
	}
	for _, r := range v {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// cacheCollector reads the cache's counters at scrape time.
type cacheCollector struct {
	get func() (CacheStats, bool)
}

var (
	cacheHits      = prometheus.NewDesc("authd_cache_hits_total", "Cache lookups that found a fresh entry, positive or negative.", nil, nil)
	cacheMisses    = prometheus.NewDesc("authd_cache_misses_total", "Cache lookups that found nothing or only an expired entry.", nil, nil)
	cacheNegHits   = prometheus.NewDesc("authd_cache_negative_hits_total", "The part of the hits that found a negative (user unknown) entry.", nil, nil)
	cacheStaleHits = prometheus.NewDesc("authd_cache_stale_hits_total", "Expired entries served because the backend could not answer.", nil, nil)
	cacheEvictions = prometheus.NewDesc("authd_cache_evictions_total", "Entries removed to stay within auth_cache_size.", nil, nil)
	cacheEntries   = prometheus.NewDesc("authd_cache_entries", "Entries in the cache now, fresh and expired.", nil, nil)
	cacheBytes     = prometheus.NewDesc("authd_cache_size_bytes", "Accounted size of the cached entries.", nil, nil)
	cacheMaxBytes  = prometheus.NewDesc("authd_cache_max_size_bytes", "The cache's byte budget (auth_cache_size).", nil, nil)
)

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cacheHits, cacheMisses, cacheNegHits, cacheStaleHits, cacheEvictions, cacheEntries, cacheBytes, cacheMaxBytes} {
		ch <- d
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st, ok := c.get()
	if !ok {
		return
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter(cacheHits, st.Hits)
	counter(cacheMisses, st.Misses)
	counter(cacheNegHits, st.NegativeHits)
	counter(cacheStaleHits, st.StaleHits)
	counter(cacheEvictions, st.Evictions)
	gauge(cacheEntries, st.Entries)
	gauge(cacheBytes, st.Bytes)
	gauge(cacheMaxBytes, st.MaxBytes)
}
