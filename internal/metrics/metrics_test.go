package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/metrics"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/schemes"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// fixture is a registry with every optional collector enabled.
type fixture struct {
	reg      *prometheus.Registry
	m        *metrics.Metrics
	cache    atomic.Pointer[metrics.CacheStats] // nil: cache off
	delayed  atomic.Int64
	panics   atomic.Int64
	notReady atomic.Bool
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry()}
	m, err := metrics.New(f.reg, metrics.Options{
		Version: "test",
		Cache: func() (metrics.CacheStats, bool) {
			if st := f.cache.Load(); st != nil {
				return *st, true
			}
			return metrics.CacheStats{}, false
		},
		DelayedFailures: func() int { return int(f.delayed.Load()) },
		Panics:          f.panics.Load,
		Ready: func() error {
			if f.notReady.Load() {
				return errors.New("sql: connection refused")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

// value returns the value of the series name{labels}: a counter's or
// gauge's value, a histogram's sample count. -1 means no such series.
func value(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if len(got) != len(want) {
				continue
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_UNTYPED:
				return m.GetUntyped().GetValue()
			}
		}
	}
	return -1
}

func newEngine(t *testing.T, obs engine.Observer) *engine.Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("alice@example.com:{PLAIN}secret:1000:1000::/home/alice::\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := engine.DBSpec{Driver: "passwd-file", ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}
	p, u := spec, spec
	p.Passdb, u.Userdb = db, db
	eng, err := engine.New(engine.Settings{}, []engine.DBSpec{p}, []engine.DBSpec{u}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.SetObserver(obs)
	return eng
}

// startClientSocket serves the client protocol on a unix socket, observed
// by m as listener "auth-client", the way the daemon wires it.
func startClientSocket(t *testing.T, eng *engine.Engine, m *metrics.Metrics) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "authd-metrics-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv := dovecot.NewClientServer(dovecot.ClientConfig{
		Engine: eng, Mechs: []sasl.Def{sasl.Defs["PLAIN"]}, Shared: dovecot.NewShared(1),
		Observe: m.ClientObserver("client"),
	})
	serve := func(nc net.Conn) {
		m.ConnOpened("auth-client")
		defer m.ConnClosed("auth-client")
		srv.Serve(nc)
	}
	return testenv.ServeUnix(t, filepath.Join(dir, "auth-client"), testenv.Served{Serve: serve, Shutdown: srv.Shutdown, Run: srv.Run})
}

// TestOneLoginMovesTheSeries logs in once over a client socket and once
// over gRPC and checks the series each login moves.
func TestOneLoginMovesTheSeries(t *testing.T) {
	f := newFixture(t)
	eng := newEngine(t, f.m)
	path := startClientSocket(t, eng, f.m)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Plain(ctx, []string{"service=imap", "rip=192.0.2.77"}, "", "alice@example.com", "secret")
	if err != nil || r.Cmd != "OK" {
		t.Fatalf("login: %v %v", r, err)
	}
	for _, s := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"authd_auth_requests_total", []string{"protocol", "client", "mechanism", "PLAIN", "result", "ok"}, 1},
		{"authd_auth_request_duration_seconds", []string{"protocol", "client", "mechanism", "PLAIN"}, 1},
		{"authd_passdb_lookups_total", []string{"driver", "passwd-file", "result", "found"}, 1},
		{"authd_passdb_lookup_duration_seconds", []string{"driver", "passwd-file"}, 1},
		{"authd_scheme_verify_duration_seconds", []string{"scheme", "PLAIN"}, 1},
		{"authd_connections_open", []string{"listener", "auth-client"}, 1},
	} {
		if got := value(t, f.reg, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	c.Close()

	// The same login over gRPC.
	gs, err := grpcserver.New(config.GRPC{Listen: "127.0.0.1:0"}, grpcserver.Options{Observer: f.m})
	if err != nil {
		t.Fatal(err)
	}
	gs.SetBackend(grpcserver.NewBackend(eng, nil, 0))
	if err := gs.Start(); err != nil {
		t.Fatal(err)
	}
	defer gs.Shutdown(context.Background())
	conn, err := grpc.NewClient(gs.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	api := authdv1.NewAuthServiceClient(conn)
	if _, err := api.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.LookupUser(ctx, &authdv1.LookupUserRequest{User: "nobody@example.com"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"authd_auth_requests_total", []string{"protocol", "grpc", "mechanism", "PLAIN", "result", "ok"}, 1},
		{"authd_auth_requests_total", []string{"protocol", "client", "mechanism", "PLAIN", "result", "ok"}, 1},
		{"authd_lookup_requests_total", []string{"protocol", "grpc", "command", "user", "result", "notfound"}, 1},
		{"authd_lookup_request_duration_seconds", []string{"protocol", "grpc", "command", "user"}, 1},
		{"authd_passdb_lookups_total", []string{"driver", "passwd-file", "result", "found"}, 2},
		{"authd_userdb_lookups_total", []string{"driver", "passwd-file", "result", "notfound"}, 1},
		{"authd_scheme_verify_duration_seconds", []string{"scheme", "PLAIN"}, 2},
		{"authd_connections_open", []string{"listener", "grpc"}, 1},
	} {
		if got := value(t, f.reg, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
	// A failed login counts as fail.
	if _, err := api.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("wrong")}); err != nil {
		t.Fatal(err)
	}
	if got := value(t, f.reg, "authd_auth_requests_total", "protocol", "grpc", "mechanism", "PLAIN", "result", "fail"); got != 1 {
		t.Errorf("failed login counted %v times", got)
	}
	noPersonalLabels(t, f.reg, "alice", "example.com", "192.0.2.77", "127.0.0.1", "secret")
}

// noPersonalLabels fails when any label value holds one of the strings:
// user names, addresses and passwords never become labels (house rule 10).
func noPersonalLabels(t *testing.T, reg prometheus.Gatherer, forbidden ...string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				for _, s := range forbidden {
					if strings.Contains(lp.GetValue(), s) {
						t.Errorf("%s has label %s=%q", mf.GetName(), lp.GetName(), lp.GetValue())
					}
				}
			}
		}
	}
}

// TestPromlint exercises every metric and lints the whole exposition.
func TestPromlint(t *testing.T) {
	f := newFixture(t)
	f.cache.Store(&metrics.CacheStats{Hits: 1})
	f.m.AuthRequest("login", "SCRAM-SHA-256", engine.StatusOK, time.Millisecond)
	f.m.LookupRequest("master", "request", engine.StatusOK, time.Millisecond)
	f.m.PassdbLookup("sql", "error", time.Millisecond)
	f.m.UserdbLookup("ldap", "found", time.Millisecond)
	f.m.Verify("SHA512-CRYPT", time.Millisecond)
	f.m.ConnOpened("auth-userdb")
	f.m.ConfigReload(false)
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	// Every authd_ family is documented in docs/metrics.md.
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	mfs, _ := f.reg.Gather()
	n := 0
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "authd_") {
			n++
			if !strings.Contains(string(doc), "`"+mf.GetName()+"`") {
				t.Errorf("%s is not in docs/metrics.md", mf.GetName())
			}
		}
	}
	if n < 20 {
		t.Errorf("only %d authd_ families exposed", n)
	}
}

func TestScrapeTimeValues(t *testing.T) {
	f := newFixture(t)
	if got := value(t, f.reg, "authd_cache_hits_total"); got != -1 {
		t.Errorf("cache off, but authd_cache_hits_total = %v", got)
	}
	f.cache.Store(&metrics.CacheStats{Hits: 10, Misses: 4, NegativeHits: 3, StaleHits: 2, Evictions: 1, Entries: 7, Bytes: 4096, MaxBytes: 1 << 20})
	f.delayed.Store(5)
	f.panics.Store(2)
	for name, want := range map[string]float64{
		"authd_cache_hits_total":                10,
		"authd_cache_misses_total":              4,
		"authd_cache_negative_hits_total":       3,
		"authd_cache_stale_hits_total":          2,
		"authd_cache_evictions_total":           1,
		"authd_cache_entries":                   7,
		"authd_cache_size_bytes":                4096,
		"authd_cache_max_size_bytes":            1 << 20,
		"authd_auth_failure_delay_queue_length": 5,
		"authd_panics_recovered_total":          2,
		"authd_ready":                           1,
	} {
		if got := value(t, f.reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	f.notReady.Store(true)
	if got := value(t, f.reg, "authd_ready"); got != 0 {
		t.Errorf("authd_ready = %v with a backend down", got)
	}
	if got := value(t, f.reg, "authd_build_info", "version", "test", "goversion", runtime.Version()); got != 1 {
		t.Errorf("authd_build_info = %v", got)
	}
	f.m.ConfigReload(true)
	f.m.ConfigReload(false)
	if value(t, f.reg, "authd_config_reloads_total", "result", "success") != 1 || value(t, f.reg, "authd_config_reloads_total", "result", "failure") != 1 {
		t.Error("config reloads not counted")
	}
}

// TestLabelGuard: free-form label values are capped and sanitised.
func TestLabelGuard(t *testing.T) {
	f := newFixture(t)
	for i := range 40 {
		f.m.PassdbLookup(fmt.Sprintf("driver%d", i), "found", time.Millisecond)
	}
	f.m.PassdbLookup("bad\ndriver", "weird-result", time.Millisecond)
	if got := value(t, f.reg, "authd_passdb_lookups_total", "driver", "other", "result", "found"); got != 8 {
		t.Errorf("drivers past the cap: %v in other, want 8", got)
	}
	if got := value(t, f.reg, "authd_passdb_lookups_total", "driver", "other", "result", "other"); got != 1 {
		t.Errorf("malformed driver and result: %v", got)
	}
	f.m.AuthRequest("smtp", "PLAIN", engine.StatusOK, time.Millisecond)
	if got := value(t, f.reg, "authd_auth_requests_total", "protocol", "other", "mechanism", "PLAIN", "result", "ok"); got != 1 {
		t.Errorf("unknown protocol: %v", got)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	f := newFixture(t)
	srv, err := metrics.Listen("127.0.0.1:0", f.m.Handler(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	base := "http://" + srv.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "authd_build_info{") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d\n%.300s", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	f.notReady.Store(true)
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "connection refused") {
		t.Errorf("/readyz with a backend down: %d %q", code, body)
	}
	if code, _ := get("/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}
	// A second listener on the same address is refused at once.
	if s2, err := metrics.Listen(srv.Addr().String(), http.NotFoundHandler(), nil); err == nil {
		s2.Shutdown(context.Background())
		t.Error("second Listen on a bound address succeeded")
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
}

func TestUnixListener(t *testing.T) {
	dir, err := os.MkdirTemp("", "authd-metrics-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "metrics.sock")
	f := newFixture(t)
	srv, err := metrics.Listen("unix:"+path, f.m.Handler(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	resp, err := client.Get("http://unix/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz over unix: %d", resp.StatusCode)
	}
	client.CloseIdleConnections()
	srv.Shutdown(context.Background())
}

// TestHashOverBudget: the over-budget counter exists at 0 for every pair
// schemes.BudgetParams lists, counts what the engine reports for a hostile
// passdb row, and folds a pair outside the closed set into other/other.
func TestHashOverBudget(t *testing.T) {
	f := newFixture(t)
	for _, p := range schemes.BudgetParams() {
		if got := value(t, f.reg, "authd_hash_over_budget_total", "scheme", p.Scheme, "param", p.Param); got != 0 {
			t.Fatalf("%s/%s starts at %v, want a 0 series", p.Scheme, p.Param, got)
		}
	}
	path := filepath.Join(t.TempDir(), "users")
	row := "mallory@example.com:{BLF-CRYPT}$2y$31$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S::::::\n"
	if err := os.WriteFile(path, []byte(row), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := engine.DBSpec{Driver: "passwd-file", Passdb: db, ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}
	eng, err := engine.New(engine.Settings{}, []engine.DBSpec{spec}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.SetObserver(f.m)
	if res := eng.VerifyPlain(context.Background(), &engine.Info{Service: "imap", Mech: "PLAIN"}, "", "mallory@example.com", []byte("pw")); res.Status != engine.StatusTempFail {
		t.Fatalf("status %v, want a temporary failure", res.Status)
	}
	if got := value(t, f.reg, "authd_hash_over_budget_total", "scheme", "BLF-CRYPT", "param", "cost"); got != 1 {
		t.Fatalf("BLF-CRYPT/cost = %v, want 1", got)
	}
	f.m.HashOverBudget("mallory@example.com", "cost")
	if got := value(t, f.reg, "authd_hash_over_budget_total", "scheme", "other", "param", "other"); got != 1 {
		t.Fatalf("other/other = %v, want 1", got)
	}
}
