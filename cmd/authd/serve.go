package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/metrics"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/vars"
)

// processStart is when authd started: APOP challenges older than it were
// not made for this process (protocol.md §4.3).
var processStart = time.Now()

// defaultConfigPath is read when -c is not given; without it authd runs
// the built-in demo.
const defaultConfigPath = "/etc/authd/authd.conf"

// instance is everything built from one configuration: the engine and one
// protocol server per listener. A reload builds a new instance and retires
// the old one, as Dovecot restarts its auth process on reload.
type instance struct {
	cfg      *config.Config
	eng      *engine.Engine
	handlers map[string]func(net.Conn) // by listener path
	shutdown []func(context.Context) error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	clients  []*dovecot.ClientServer // for the failure-delay queue metric
	grpc     *grpcserver.Backend     // this instance's engine, as the gRPC server sees it
}

// listener is one unix socket. Its handler is swapped on reload; the
// socket itself is kept when its path did not change, so clients never see
// it vanish.
type listener struct {
	cfg     config.Listener
	ln      *net.UnixListener
	handler atomic.Pointer[func(net.Conn)]
}

type daemon struct {
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
}

// loadConfig loads path, or the demo config when path is empty and the
// default file does not exist. demo reports which.
func loadConfig(path string, explicit bool, stderr io.Writer) (cfg *config.Config, demo bool, err error) {
	if !explicit {
		if _, err := os.Stat(defaultConfigPath); err == nil {
			path = defaultConfigPath
		} else {
			cfg, err := demoConfig()
			return cfg, true, err
		}
	}
	cfg, err = config.Load(path)
	return cfg, false, err
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", defaultConfigPath, "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "c" })

	cfg, demo, err := loadConfig(*cfgPath, explicit, stderr)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	log := newLogger(cfg, stderr)
	if len(cfg.Ignored) > 0 {
		log.Info("ignoring settings of other Dovecot services", "settings", strings.Join(cfg.Ignored, " "))
	}
	d := &daemon{log: log, shared: dovecot.NewShared(uint32(os.Getpid())), listeners: map[string]*listener{}}
	if err := d.initMetrics(); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := d.start(cfg); err != nil {
		log.Error("cannot start", "err", err)
		d.stop(context.Background())
		return 1
	}
	if demo {
		printDemo(stdout, cfg)
	}
	log.Info("authd started", "version", version, "pid", os.Getpid(), "listeners", len(d.listeners))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
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
			return 0
		case <-hup:
			d.reload(*cfgPath, explicit, demo, stderr)
		}
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cfg.Auth.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func printConfigErrors(w io.Writer, err error) {
	if list := config.AsErrorList(err); len(list) > 0 {
		for _, e := range list {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err.Error())
}

// build constructs an instance from cfg without touching any socket.
func (d *daemon) build(cfg *config.Config) (*instance, error) {
	eng, err := buildEngine(cfg, d.log)
	if err != nil {
		return nil, err
	}
	mechs, err := buildMechs(cfg)
	if err != nil {
		_ = eng.Close()
		return nil, err
	}
	// A new instance starts with an empty cache: a reload flushes it, as
	// SIGHUP does in Dovecot.
	eng.SetCache(cache.New(cache.Options{
		MaxBytes:    cfg.Auth.CacheSize,
		TTL:         cfg.Auth.CacheTTL,
		NegativeTTL: cfg.Auth.CacheNegativeTTL,
		Fingerprint: cfg.Auth.CacheVerifyPasswordFingerprint,
	}))
	eng.SetObserver(d.metrics)
	inst := &instance{cfg: cfg, eng: eng, handlers: map[string]func(net.Conn){}}
	inst.grpc = grpcserver.NewBackend(eng, eng.Cache(), cfg.Auth.FailureDelay)
	inst.shutdown = append(inst.shutdown, inst.grpc.Drain)
	ctx, cancel := context.WithCancel(context.Background())
	inst.cancel = cancel
	for _, l := range cfg.Listeners {
		switch l.Role {
		case config.RoleClient, config.RoleLogin:
			protocol := "client"
			if l.Role == config.RoleLogin {
				protocol = "login"
			}
			srv := dovecot.NewClientServer(dovecot.ClientConfig{
				Engine:               eng,
				Mechs:                mechs,
				Login:                l.Role == config.RoleLogin,
				FailureDelay:         cfg.Auth.FailureDelay,
				DebugPasswords:       cfg.Auth.DebugPasswords,
				Debug:                cfg.Auth.Debug,
				Log:                  d.log.With("listener", l.Name),
				Shared:               d.shared,
				Observe:              d.metrics.ClientObserver(protocol),
				SSLRequireClientCert: cfg.Auth.SSLRequireClientCert,
				SSLUsernameFromCert:  cfg.Auth.SSLUsernameFromCert,
				SASL: &sasl.Settings{
					Realms:            cfg.Auth.Realms,
					AnonymousUsername: cfg.Auth.AnonymousUsername,
					UsernameFromCert:  cfg.Auth.SSLUsernameFromCert,
					StartTime:         processStart,
				},
			})
			inst.wg.Add(1)
			go func() {
				defer inst.wg.Done()
				srv.Run(ctx)
			}()
			inst.clients = append(inst.clients, srv)
			inst.handlers[l.Path] = srv.Serve
			inst.shutdown = append(inst.shutdown, srv.Shutdown)
		case config.RoleMaster, config.RoleUserdb:
			protocol := "master"
			if l.Role == config.RoleUserdb {
				protocol = "userdb"
			}
			mc := dovecot.MasterConfig{
				Engine:  eng,
				Cache:   eng.Cache(),
				Full:    l.Role == config.RoleMaster,
				Debug:   cfg.Auth.Debug,
				Log:     d.log.With("listener", l.Name),
				Shared:  d.shared,
				Observe: d.metrics.MasterObserver(protocol),
			}
			// The 0666 auth-userdb rule (protocol.md §2.1).
			if l.Role == config.RoleUserdb && l.Mode.Perm() == 0o666 {
				mc.Restrict = true
				mc.SocketUID, mc.SockGID = ownerIDs(l)
			}
			srv := dovecot.NewMasterServer(mc)
			inst.handlers[l.Path] = srv.Serve
			inst.shutdown = append(inst.shutdown, srv.Shutdown)
		}
	}
	return inst, nil
}

// ownerIDs returns the uid/gid the socket file gets.
func ownerIDs(l config.Listener) (uint32, uint32) {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if l.User != "" {
		if u, err := user.Lookup(l.User); err == nil {
			if n, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
				uid = uint32(n)
			}
		}
	}
	if l.Group != "" {
		if g, err := user.LookupGroup(l.Group); err == nil {
			if n, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
				gid = uint32(n)
			}
		}
	}
	return uid, gid
}

func buildMechs(cfg *config.Config) ([]sasl.Def, error) {
	var out []sasl.Def
	for _, m := range cfg.Auth.Mechanisms {
		def, ok := sasl.Defs[strings.ToUpper(m)]
		if !ok {
			return nil, fmt.Errorf("auth_mechanisms: %s is not implemented yet", m)
		}
		out = append(out, def)
	}
	if len(out) == 0 {
		return nil, errors.New("auth_mechanisms: no mechanism enabled")
	}
	return out, nil
}

// buildEngine builds the drivers and the engine. Errors name the block's
// file:line.
func buildEngine(cfg *config.Config, log *slog.Logger) (*engine.Engine, error) {
	ds := newDriverSet(log)
	var errs []error
	var passdbs, userdbs []engine.DBSpec
	for _, p := range cfg.Passdbs {
		spec, err := dbSpec(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: passdb: %w", p.Pos, err))
			continue
		}
		db, err := ds.passdb(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: passdb %s: %w", p.Pos, p.Driver, err))
			continue
		}
		spec.Passdb = db
		passdbs = append(passdbs, spec)
	}
	for _, u := range cfg.Userdbs {
		spec, err := dbSpec(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: userdb: %w", u.Pos, err))
			continue
		}
		db, err := ds.userdb(u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: userdb %s: %w", u.Pos, u.Driver, err))
			continue
		}
		spec.Userdb = db
		userdbs = append(userdbs, spec)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a := cfg.Auth
	return engine.New(engine.Settings{
		Realms:              a.Realms,
		DefaultRealm:        a.DefaultRealm,
		UsernameChars:       a.UsernameChars,
		UsernameTranslation: a.UsernameTranslation,
		UsernameFormat:      a.UsernameFormat,
		MasterUserSeparator: a.MasterUserSeparator,
		AnonymousUsername:   a.AnonymousUsername,
		DebugPasswords:      a.DebugPasswords,
		UsernameFromCert:    a.SSLUsernameFromCert,
		FirstValidUID:       a.FirstValidUID,
		LastValidUID:        a.LastValidUID,
		FirstValidGID:       a.FirstValidGID,
		LastValidGID:        a.LastValidGID,
	}, passdbs, userdbs, log)
}

func dbSpec(c config.DB) (engine.DBSpec, error) {
	s := engine.DBSpec{
		Name: c.Name, Driver: c.Driver, Skip: c.Skip,
		Mechanisms: c.Mechanisms, Deny: c.Deny, Master: c.Master, Pass: c.Pass,
	}
	var err error
	if s.DefaultFields, err = vars.ParseFields(c.DefaultFields); err != nil {
		return s, fmt.Errorf("default_fields: %w", err)
	}
	if s.OverrideFields, err = vars.ParseFields(c.OverrideFields); err != nil {
		return s, fmt.Errorf("override_fields: %w", err)
	}
	rules := []struct {
		v    string
		def  engine.Rule
		dst  *engine.Rule
		name string
	}{
		{c.ResultSuccess, engine.RuleReturnOK, &s.ResultSuccess, "result_success"},
		{c.ResultFailure, engine.RuleContinue, &s.ResultFailure, "result_failure"},
		{c.ResultInternalfail, engine.RuleContinue, &s.ResultInternalfail, "result_internalfail"},
	}
	for _, r := range rules {
		*r.dst = r.def
		if r.v != "" {
			if *r.dst, err = engine.ParseRule(r.v); err != nil {
				return s, fmt.Errorf("%s: %w", r.name, err)
			}
		}
	}
	if c.UsernameFilter != "" {
		s.UsernameFilter = strings.FieldsFunc(c.UsernameFilter, func(r rune) bool { return r == ' ' || r == ',' })
	}
	for i, m := range s.Mechanisms {
		s.Mechanisms[i] = strings.ToUpper(m)
	}
	return s, nil
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

// apply opens, keeps or closes sockets to match inst and points every
// socket at inst's handlers.
func (d *daemon) apply(inst *instance) error {
	want := map[string]config.Listener{}
	for _, l := range inst.cfg.Listeners {
		want[l.Path] = l
	}
	var opened []*listener
	for path, lc := range want {
		if old, ok := d.listeners[path]; ok {
			old.cfg = lc
			if err := setOwnerMode(path, lc); err != nil {
				return err
			}
			continue
		}
		ln, err := listenUnix(lc)
		if err != nil {
			for _, l := range opened {
				d.closeListener(l)
			}
			return err
		}
		l := &listener{cfg: lc, ln: ln}
		opened = append(opened, l)
	}
	// gRPC before anything is switched: its failure (a port in use, an
	// unreadable certificate) must leave the sockets as they were.
	if err := d.applyGRPC(inst); err != nil {
		for _, l := range opened {
			d.closeListener(l)
		}
		return err
	}
	for _, l := range opened {
		// The handler must be in place before the accept loop starts:
		// clients queue on the socket as soon as it exists.
		h := inst.handlers[l.cfg.Path]
		l.handler.Store(&h)
		d.listeners[l.cfg.Path] = l
		d.serve(l)
	}
	for path, l := range d.listeners {
		if _, ok := want[path]; !ok {
			d.closeListener(l)
			delete(d.listeners, path)
		}
	}
	for path, l := range d.listeners {
		h := inst.handlers[path]
		l.handler.Store(&h)
	}
	d.cur = inst
	d.live.Store(inst)
	return nil
}

// serve runs the accept loop of l until its socket is closed.
func (d *daemon) serve(l *listener) {
	name := l.cfg.Name // the metrics label: a configured name, never a client's
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			nc, err := l.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// EMFILE and friends: back off instead of spinning.
				d.log.Error("accept failed", "listener", l.cfg.Path, "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			h := *l.handler.Load()
			go func() {
				d.metrics.ConnOpened(name)
				defer d.metrics.ConnClosed(name)
				h(nc)
			}()
		}
	}()
}

func (d *daemon) closeListener(l *listener) {
	_ = l.ln.Close()
	_ = os.Remove(l.cfg.Path)
}

// reload re-reads the configuration. A config with errors is rejected
// whole and the running one keeps serving.
func (d *daemon) reload(path string, explicit, demo bool, stderr io.Writer) {
	d.log.Info("reloading configuration")
	var cfg *config.Config
	var err error
	if demo {
		cfg, err = demoConfig()
	} else {
		cfg, _, err = loadConfig(path, explicit, stderr)
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

// retire drains an instance's servers and closes its drivers.
func (d *daemon) retire(inst *instance, ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, f := range inst.shutdown {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	inst.cancel()
	inst.wg.Wait()
	errs = append(errs, inst.eng.Close())
	return errors.Join(errs...)
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
	errs = append(errs, d.stopMetrics(ctx))
	return errors.Join(errs...)
}

// listenUnix creates a socket at lc.Path with its mode and owner. It is
// bound under a temporary name and renamed into place, so the socket never
// exists with the wrong permissions. A stale socket file is replaced; a
// socket another live process answers on is not stolen.
func listenUnix(lc config.Listener) (*net.UnixListener, error) {
	path := lc.Path
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listener %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listener %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listener %s: another process is listening on this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listener %s: removing stale socket: %w", path, err)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".authd-%d-%s", os.Getpid(), shortHash(path)))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, error) {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := setOwnerMode(tmp, lc); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("listener %s: %w", path, err))
	}
	return ln, nil
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return strconv.FormatUint(uint64(h), 36)
}

func setOwnerMode(path string, lc config.Listener) error {
	if err := os.Chmod(path, lc.Mode.Perm()); err != nil {
		return fmt.Errorf("listener %s: chmod: %w", lc.Path, err)
	}
	if lc.User == "" && lc.Group == "" {
		return nil
	}
	uid, gid := -1, -1
	if lc.User != "" {
		u, err := user.Lookup(lc.User)
		if err != nil {
			return fmt.Errorf("listener %s: user %s: %w", lc.Path, lc.User, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	if lc.Group != "" {
		g, err := user.LookupGroup(lc.Group)
		if err != nil {
			return fmt.Errorf("listener %s: group %s: %w", lc.Path, lc.Group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return fmt.Errorf("listener %s: chown: %w", lc.Path, err)
	}
	return nil
}
