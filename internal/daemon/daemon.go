package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/gcfloor"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/metrics"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/procs"
	"github.com/authd-project/authd/internal/ratelog"
)

// DefaultConfigPath is read when no configuration file is named; without
// it authd runs the built-in demo.
const DefaultConfigPath = "/etc/authd/authd.conf"

// Options configure Run.
type Options struct {
	// ConfigPath is the configuration file; "" means DefaultConfigPath
	// when it exists, else the built-in demo configuration.
	ConfigPath string
	// Version is reported in the log and the metrics.
	Version string
	// Reload delivers a value for each reload request (SIGHUP).
	Reload <-chan os.Signal
	// Stdout gets the demo's instructions; Stderr the log, and the
	// configuration errors that keep authd from starting.
	Stdout, Stderr io.Writer
}

// ErrNotStarted is returned by Run when authd could not start; what went
// wrong has been reported on Options.Stderr already.
var ErrNotStarted = errors.New("authd did not start")

// Run loads the configuration, serves it until ctx ends, and then shuts
// down gracefully: it stops accepting, lets the requests in flight finish
// (bounded by shutdown_timeout) and removes its sockets. Each value on
// o.Reload reloads the configuration; a configuration with errors is
// rejected whole and the running one keeps serving.
func Run(ctx context.Context, o Options) error {
	// Not dumpable: no core file and no ptrace by other processes of the
	// same user; a dump would hold passwords in flight and cached hashes.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	cfg, demo, err := loadConfig(o.ConfigPath)
	if err != nil {
		printConfigErrors(o.Stderr, err)
		return ErrNotStarted
	}
	log := newLogger(cfg, o.Stderr)
	if len(cfg.Ignored) > 0 {
		log.Info("ignoring settings of other Dovecot services", "settings", strings.Join(cfg.Ignored, " "))
	}
	d := &daemon{opts: o, demo: demo, log: log, shared: dovecot.NewShared(uint32(os.Getpid())), listeners: map[string]*listener{}}
	if err := d.initMetrics(); err != nil {
		log.Error("cannot start", "err", err)
		return ErrNotStarted
	}
	if err := d.start(cfg); err != nil {
		log.Error("cannot start", "err", err)
		d.stop(context.Background())
		return ErrNotStarted
	}
	if demo {
		printDemo(o.Stdout, cfg)
	}
	log.Info("authd started", "version", o.Version, "pid", os.Getpid(), "listeners", len(d.listeners))
	// Fewer garbage collections while the live heap is small (package
	// gcfloor); unless GOGC is set.
	gcctx, gcstop := context.WithCancel(ctx)
	var gcwg sync.WaitGroup
	gcwg.Go(func() { gcfloor.Run(gcctx, gcfloor.Default) })
	// One processor while nearly idle, all of them when busy (package
	// procs); unless GOMAXPROCS is set.
	gcwg.Go(func() { procs.Run(gcctx, procs.Default) })
	defer func() { gcstop(); gcwg.Wait() }()
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), d.cur.cfg.ShutdownTimeout)
			err := d.stop(sctx)
			cancel()
			if err != nil {
				log.Warn("shutdown incomplete", "err", err)
			}
			log.Info("stopped")
			return nil
		case <-o.Reload:
			d.reload()
		}
	}
}

// processStart is when authd started: APOP challenges older than it were
// not made for this process (docs/protocol.md §4.3).
var processStart = time.Now()

// instance is everything built from one configuration: the engine and one
// protocol server per listener. A reload builds a new instance and retires
// the old one, as Dovecot restarts its auth process on reload.
type instance struct {
	cfg      *config.Config
	eng      *engine.Engine
	handlers map[string]func(net.Conn) // by listener key: the unix socket path, or inetKey
	shutdown []func(context.Context) error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	clients  []*dovecot.ClientServer // for the failure-delay queue metric
	grpc     *grpcserver.Backend     // this instance's engine, as the gRPC server sees it
	limiter  *limiter.Limiter        // the brute-force defence; nil when off
	policy   *policy.Client          // the auth policy server's client; nil when off
	redis    *sharedRedis            // the state shared through Redis; nil without redis { }
	flusher  clusterFlusher          // the cache flush of CACHE-FLUSH and gRPC
}

// listener is one unix socket. Its handler is swapped on reload; the
// socket itself is kept when its path did not change, so clients never see
// it vanish.
type listener struct {
	key     string          // unix: the socket path; TCP: network and address (inetKey)
	name    string          // the configured name: the metrics label
	cfg     config.Listener // unix sockets
	ln      net.Listener
	sock    *sockFile // unix sockets: the socket file, for changes and removal
	handler atomic.Pointer[func(net.Conn)]
	// inet is the inet_listener a TCP socket serves (nil for a unix
	// socket): its allow_nets decide who may connect. A reload swaps it.
	inet    atomic.Pointer[config.InetListener]
	refused ratelog.Limiter // refused TCP peers, logged at most once a second
}

type daemon struct {
	opts      Options
	demo      bool // serving the built-in demo configuration
	log       *slog.Logger
	shared    *dovecot.Shared
	listeners map[string]*listener
	cur       *instance
	wg        sync.WaitGroup // accept loops and retiring instances

	// live is cur for other goroutines: metric scrapes, readiness.
	live       atomic.Pointer[instance]
	reg        *prometheus.Registry
	metrics    *metrics.Metrics
	metricsSrv *metrics.Server
	metricsAt  string                            // metricsSrv's listen value
	grpc       atomic.Pointer[grpcserver.Server] // nil when grpc { } has no listen
	// grpcPast holds the counters of gRPC listeners a reload or shutdown
	// retired (grpcStats).
	grpcPastMu sync.Mutex
	grpcPast   grpcserver.Stats
}

// start builds the first instance and opens its sockets.
func (d *daemon) start(cfg *config.Config) error {
	inst, err := d.build(cfg)
	if err != nil {
		return err
	}
	if err := d.apply(inst); err != nil {
		d.retire(inst, context.Background())
		return err
	}
	return d.applyMetrics(cfg)
}

// reload re-reads the configuration. A config with errors is rejected
// whole and the running one keeps serving.
func (d *daemon) reload() {
	d.log.Info("reloading configuration")
	var cfg *config.Config
	var err error
	if d.demo {
		cfg, err = demoConfig()
	} else {
		cfg, _, err = loadConfig(d.opts.ConfigPath)
	}
	if err != nil {
		if list := config.AsErrorList(err); len(list) > 0 {
			for _, e := range list {
				d.log.Error("config error; keeping the running configuration", "err", e.Error())
			}
		} else {
			d.log.Error("config error; keeping the running configuration", "err", err)
		}
		d.metrics.ConfigReload(false)
		return
	}
	inst, err := d.build(cfg)
	if err != nil {
		d.log.Error("new configuration failed; keeping the running one", "err", err)
		d.metrics.ConfigReload(false)
		return
	}
	old := d.cur
	if err := d.apply(inst); err != nil {
		d.log.Error("new configuration's sockets failed; keeping the running one", "err", err)
		d.retire(inst, context.Background())
		d.metrics.ConfigReload(false)
		return
	}
	d.metrics.ConfigReload(true)
	d.flushEverywhere(inst)
	if err := d.applyMetrics(cfg); err != nil {
		d.log.Error("metrics listener failed; metrics are off until the next reload", "err", err)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), old.cfg.ShutdownTimeout)
		defer cancel()
		d.retire(old, ctx)
	}()
	d.log.Info("configuration reloaded")
}

// stop closes every socket, drains the current instance and waits for
// every goroutine the daemon started.
func (d *daemon) stop(ctx context.Context) error {
	errs := []error{d.stopGRPC(ctx)}
	for path, l := range d.listeners {
		d.closeListener(l)
		delete(d.listeners, path)
	}
	if d.cur != nil {
		errs = append(errs, d.retire(d.cur, ctx))
	}
	d.wg.Wait()
	if d.cur != nil {
		d.cur.redis.stop()
	}
	errs = append(errs, d.stopMetrics(ctx))
	return errors.Join(errs...)
}
