package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/metrics"
	"github.com/authd-project/authd/internal/policy"
)

// The daemon's gRPC listener and metrics endpoint. Both outlive reloads:
// the gRPC server gets each new instance's engine through its Backend, and
// the metrics read the current instance at scrape time through d.live.

// initMetrics builds the process's registry and collectors. They exist
// even without a metrics { } listener, so the observers never check.
func (d *daemon) initMetrics() error {
	d.reg = prometheus.NewRegistry()
	m, err := metrics.New(d.reg, metrics.Options{
		Version:         d.opts.Version,
		Cache:           d.cacheStats,
		DelayedFailures: d.delayedFailures,
		Panics:          d.shared.Stats.Panics.Load,
		Ready:           d.ready,
		Penalty:         d.penaltyStats,
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := d.reg.Register(metrics.PolicyCollector(d.policyStats)); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := d.reg.Register(metrics.LimitsCollector(d.limitStats)); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	d.metrics = m
	return nil
}

// policyStats reads the current auth policy client (scrape time).
func (d *daemon) policyStats() (policy.Stats, bool) {
	inst := d.live.Load()
	if inst == nil || inst.policy == nil {
		return policy.Stats{}, false
	}
	return inst.policy.Stats(), true
}

// cacheStats reads the current instance's cache (scrape time).
func (d *daemon) cacheStats() (metrics.CacheStats, bool) {
	inst := d.live.Load()
	if inst == nil || inst.eng.Cache() == nil {
		return metrics.CacheStats{}, false
	}
	s := inst.eng.Cache().Stats()
	return metrics.CacheStats{
		Hits: s.Hits, Misses: s.Misses, NegativeHits: s.NegativeHits, StaleHits: s.StaleHits,
		Evictions: s.Evictions, Entries: s.Entries, Bytes: s.Bytes, MaxBytes: s.MaxBytes,
	}, true
}

// penaltyStats reads the current brute-force defence (scrape time).
func (d *daemon) penaltyStats() (limiter.Stats, bool) {
	inst := d.live.Load()
	if inst == nil || inst.limiter == nil {
		return limiter.Stats{}, false
	}
	return inst.limiter.Stats(), true
}

// limitStats reads the limits' counters (scrape time): the Dovecot
// sockets' from the process-wide Shared, gRPC's from every listener this
// process ran.
func (d *daemon) limitStats() metrics.LimitStats {
	dc := &d.shared.Stats
	g := d.grpcStats()
	return metrics.LimitStats{
		DovecotRefused:       dc.Refused.Load(),
		GRPCRefused:          g.RefusedConnections,
		Overdue:              dc.Overdue.Load(),
		DovecotDelayOverflow: dc.DelayOverflow.Load(),
		GRPCDelayOverflow:    g.UndelayedAnswers,
		TooLarge:             dc.TooLarge.Load(),
	}
}

// grpcStats sums the counters of the current gRPC listener and of those
// a reload replaced, so that the metrics never go down.
func (d *daemon) grpcStats() grpcserver.Stats {
	d.grpcPastMu.Lock()
	defer d.grpcPastMu.Unlock()
	st := d.grpcPast
	if g := d.grpc.Load(); g != nil {
		st = addGRPCStats(st, g.Stats())
	}
	return st
}

// retireGRPC takes g out of service for the metrics: its counters move to
// the past ones in the same step, never counted twice or not at all.
func (d *daemon) retireGRPC(g *grpcserver.Server) {
	d.grpcPastMu.Lock()
	defer d.grpcPastMu.Unlock()
	if d.grpc.CompareAndSwap(g, nil) {
		d.grpcPast = addGRPCStats(d.grpcPast, g.Stats())
	}
}

func addGRPCStats(a, b grpcserver.Stats) grpcserver.Stats {
	return grpcserver.Stats{
		RefusedConnections: a.RefusedConnections + b.RefusedConnections,
		UndelayedAnswers:   a.UndelayedAnswers + b.UndelayedAnswers,
		AnsweredAtCut:      a.AnsweredAtCut + b.AnsweredAtCut,
	}
}

// delayedFailures counts the failures waiting for auth_failure_delay on
// the current instance's client sockets and on gRPC (scrape time).
func (d *daemon) delayedFailures() int {
	n := 0
	if inst := d.live.Load(); inst != nil {
		for _, c := range inst.clients {
			n += c.DelayedFailures()
		}
	}
	if g := d.grpc.Load(); g != nil {
		n += g.DelayedFailures()
	}
	return n
}

// ready is the /readyz and gRPC health condition: a configuration is
// served and every backend answered its last lookup.
func (d *daemon) ready() error {
	inst := d.live.Load()
	if inst == nil {
		return errors.New("no configuration loaded")
	}
	return inst.eng.Ready()
}

// applyGRPC makes the gRPC listener match inst's grpc { } section and
// points it at inst's engine. The same listener stays when its address and
// TLS mode did not change (certificates are re-read); otherwise it is
// replaced. An error leaves the previous listener serving when possible.
func (d *daemon) applyGRPC(inst *instance) error {
	want := inst.cfg.GRPC
	cur := d.grpc.Load()
	if cur != nil && want.Listen != "" {
		err := cur.Reload(want)
		if err == nil {
			cur.SetBackend(inst.grpc)
			return nil
		}
		if !errors.Is(err, grpcserver.ErrRestartRequired) {
			return err // e.g. an unreadable new certificate: keep everything
		}
	}
	if cur == nil && want.Listen == "" {
		return nil
	}
	// Build the new server before stopping the old one, so a bad
	// certificate leaves the old one serving.
	var next *grpcserver.Server
	if want.Listen != "" {
		var err error
		if next, err = d.newGRPC(want, inst.grpc); err != nil {
			return err
		}
	}
	if cur != nil {
		// The old listener must free its port before the new one binds it.
		ctx, cancel := context.WithTimeout(context.Background(), inst.cfg.ShutdownTimeout)
		if err := cur.Shutdown(ctx); err != nil {
			d.log.Warn("grpc listener stopped with requests running", "err", err)
		}
		cancel()
		d.retireGRPC(cur)
	}
	if next == nil {
		return nil
	}
	if err := next.Start(); err != nil {
		// Bring the previous listener back rather than leave gRPC off.
		if cur != nil && d.cur != nil {
			if prev, perr := d.newGRPC(d.cur.cfg.GRPC, d.cur.grpc); perr == nil && prev.Start() == nil {
				d.grpc.Store(prev)
			}
		}
		return err
	}
	d.grpc.Store(next)
	return nil
}

func (d *daemon) newGRPC(cfg config.GRPC, b *grpcserver.Backend) (*grpcserver.Server, error) {
	s, err := grpcserver.New(cfg, grpcserver.Options{
		Log:      d.log.With("listener", "grpc"),
		Observer: d.metrics,
		Panics:   &d.shared.Stats.Panics,
		Ready:    d.ready,
	})
	if err != nil {
		return nil, err
	}
	s.SetBackend(b)
	return s, nil
}

// applyMetrics (re)opens the metrics { } listener when its address
// changed.
func (d *daemon) applyMetrics(cfg *config.Config) error {
	want := cfg.Metrics.Listen
	if d.metricsSrv != nil && want == d.metricsAt {
		return nil
	}
	if d.metricsSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = d.metricsSrv.Shutdown(ctx)
		cancel()
		d.metricsSrv, d.metricsAt = nil, ""
	}
	if want == "" {
		return nil
	}
	srv, err := metrics.Listen(want, d.metrics.Handler(d.log), d.log.With("listener", "metrics"))
	if err != nil {
		return err
	}
	d.metricsSrv, d.metricsAt = srv, want
	d.log.Info("metrics listening", "addr", srv.Addr().String())
	return nil
}

// stopGRPC stops the gRPC listener first at shutdown: it drains its own
// requests, then the instance retires.
func (d *daemon) stopGRPC(ctx context.Context) error {
	g := d.grpc.Load()
	if g == nil {
		return nil
	}
	d.retireGRPC(g)
	return g.Shutdown(ctx)
}

// stopMetrics closes the metrics listener last, so shutdown stays
// observable until the end.
func (d *daemon) stopMetrics(ctx context.Context) error {
	if d.metricsSrv == nil {
		return nil
	}
	err := d.metricsSrv.Shutdown(ctx)
	d.metricsSrv, d.metricsAt = nil, ""
	return err
}
