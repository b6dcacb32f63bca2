package grpcserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/ratelog"
)

// Observer is told about every finished request and every connection, for
// metrics. *metrics.Metrics implements it. Calls must be cheap and safe
// for concurrent use.
type Observer interface {
	// AuthRequest: protocol "grpc", mech "PLAIN".
	AuthRequest(protocol, mech string, st engine.Status, d time.Duration)
	// LookupRequest: protocol "grpc", command user, pass, list or
	// cache_flush.
	LookupRequest(protocol, command string, st engine.Status, d time.Duration)
	ConnOpened(listener string)
	ConnClosed(listener string)
}

// Options are the parts of a Server that do not come from grpc { }.
type Options struct {
	Log      *slog.Logger
	Observer Observer // may be nil
	// Panics counts panics recovered in handlers; pass
	// &dovecot.Shared.Stats.Panics so there is one counter per process.
	// May be nil.
	Panics *atomic.Int64
	// Ready reports whether the backends answered their last check. It
	// drives the health status of the service "authd.v1.AuthService";
	// the overall status "" is SERVING for as long as the server runs.
	// nil means always ready.
	Ready func() error
}

// ErrRestartRequired is returned by Reload when the new grpc { } section
// changes what the listener is (address, TLS on or off, the plaintext
// exception) or a limit the gRPC server was built with: the daemon must
// shut this Server down and start a new one.
var ErrRestartRequired = errors.New("grpc: listen, TLS mode, allow_plaintext_remote, reflection or a connection limit changed; the gRPC listener must be restarted")

// Limits on requests. Names and passwords are bounded like the client
// socket's 16 KiB lines bound them (docs/protocol.md §1.4): a password of 12 KiB
// still fits (OAuth2 tokens are sent as passwords by some setups).
const (
	maxNameLen    = 1024
	maxPassLen    = 12 << 10
	readyInterval = 5 * time.Second
	// serviceName is the health-checked service.
	serviceName = "authd.v1.AuthService"
	// listTimeout bounds ListUsers at least this long: the master
	// socket's request time, since listing a big directory takes a while.
	listTimeout = 150 * time.Second
	// The server's own keepalive: a connection silent for pingAfter is
	// pinged, and closed when the ping is not answered within pingWait,
	// so a vanished client does not keep its place under max_connections.
	pingAfter = time.Minute
	pingWait  = 20 * time.Second
)

// Server is the gRPC listener of the grpc { } section.
type Server struct {
	cfg     config.GRPC
	opts    Options
	log     *slog.Logger
	gs      *grpc.Server
	health  *health.Server
	tls     atomic.Pointer[tls.Config] // nil: plaintext
	backend atomic.Pointer[Backend]
	delay   *failureDelay
	// What Reload may change while requests run.
	policy     atomic.Pointer[policy]
	reqTimeout atomic.Int64 // request_timeout, in ns

	cutAnswers  atomic.Int64    // Authenticate answers given at a client's cut (auth.go)
	deniedLog   ratelog.Limiter // admin RPCs refused
	ignoredInfo atomic.Bool     // an untrusted caller's addresses were ignored (logged once)

	// workers run the engine part of requests that were answered before
	// it finished (auth.go); Shutdown waits for them.
	workers     sync.WaitGroup
	wmu         sync.Mutex
	workersDone bool

	mu       sync.Mutex
	ln       *capListener
	started  bool
	stopping bool
	serveErr chan error
	stopPoll chan struct{}
	pollDone chan struct{}
}

// withLimitDefaults gives every limit left at zero its default, so that a
// GRPC written by hand (tests, tools) is as bounded as a loaded one.
func withLimitDefaults(cfg config.GRPC) config.GRPC {
	def := config.DefaultGRPC()
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&cfg.HandshakeTimeout, def.HandshakeTimeout)
	set(&cfg.RequestTimeout, def.RequestTimeout)
	set(&cfg.KeepaliveMinTime, def.KeepaliveMinTime)
	for _, n := range []struct {
		v *int
		d int
	}{
		{&cfg.MaxConnections, def.MaxConnections}, {&cfg.MaxMessageSize, def.MaxMessageSize}, {&cfg.MaxDelayedAnswers, def.MaxDelayedAnswers},
	} {
		if *n.v <= 0 {
			*n.v = n.d
		}
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = def.MaxStreams
	}
	return cfg
}

// New builds a Server for cfg: it reads the TLS files, but opens no
// socket until Start. cfg is assumed to have passed config validation;
// a limit left at zero takes its default (IdleTimeout 0 means never).
func New(cfg config.GRPC, o Options) (*Server, error) {
	if cfg.Listen == "" {
		return nil, errors.New("grpc: no listen address")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	cfg = withLimitDefaults(cfg)
	s := &Server{cfg: cfg, opts: o, log: o.Log, delay: newFailureDelay(cfg.MaxDelayedAnswers), health: health.NewServer()}
	s.policy.Store(newPolicy(cfg))
	s.reqTimeout.Store(int64(cfg.RequestTimeout))
	sopts := serverOptions(cfg, s)
	if cfg.TLSCertFile != "" {
		tc, err := loadTLS(cfg)
		if err != nil {
			return nil, err
		}
		s.tls.Store(tc)
		// The handshake takes the current config on every connection, so
		// Reload can swap certificates without touching the listener.
		base := &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return s.tls.Load(), nil
			},
		}
		sopts = append(sopts, grpc.Creds(credentials.NewTLS(base)))
	}
	s.gs = grpc.NewServer(sopts...)
	authdv1.RegisterAuthServiceServer(s.gs, &service{s: s})
	healthpb.RegisterHealthServer(s.gs, s.health)
	if cfg.Reflection {
		reflection.Register(s.gs)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.updateReadiness()
	return s, nil
}

// serverOptions sets every limit grpc-go would otherwise leave open
// (its defaults: unlimited streams per connection, 120 s to finish a
// handshake, 4 MiB messages, no idle limit).
func serverOptions(cfg config.GRPC, s *Server) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(cfg.MaxStreams),
		// A bigger request fails with RESOURCE_EXHAUSTED before it is
		// decoded. Answers are bounded by what they carry (ListUsers
		// sends batches of at most 64 KiB).
		grpc.MaxRecvMsgSize(cfg.MaxMessageSize),
		// TLS and the HTTP/2 preface must be done by then: a client that
		// stalls in its handshake is cut, not kept.
		grpc.ConnectionTimeout(cfg.HandshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: cfg.KeepaliveMinTime,
			// Pools keep idle connections warm with pings; at one per
			// MinTime that costs nothing, and idle_timeout still closes
			// a connection that makes no calls.
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: cfg.IdleTimeout, // 0: grpc-go's "never"
			Time:              pingAfter,
			Timeout:           pingWait,
		}),
		grpc.ChainUnaryInterceptor(s.recoverUnary, s.authorizeUnary),
		grpc.ChainStreamInterceptor(s.recoverStream, s.authorizeStream),
		grpc.StatsHandler(connCounter{s.opts.Observer}),
	}
}

// requestTimeout is request_timeout: the longest the engine may work on
// one RPC when the client's deadline is later or absent.
func (s *Server) requestTimeout() time.Duration { return time.Duration(s.reqTimeout.Load()) }

// goWorker runs f on a goroutine Shutdown waits for; false once Shutdown
// has begun (f is not run).
func (s *Server) goWorker(f func()) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.workersDone {
		return false
	}
	s.workers.Go(f)
	return true
}

// loadTLS reads the certificate, key and client CA of cfg. With a client
// CA, every client must present a certificate that chains to it (mTLS).
func loadTLS(cfg config.GRPC) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("grpc: tls_cert_file/tls_key_file: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// gRPC runs over HTTP/2 and grpc-go refuses a handshake that did
		// not negotiate it; a config from GetConfigForClient must say so
		// itself.
		NextProtos: []string{"h2"},
	}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("grpc: tls_client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("grpc: tls_client_ca_file %s: no PEM certificate found", cfg.TLSClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// SetBackend makes b the backend of new requests. Requests already running
// keep theirs; the daemon drains the old one with its Drain.
func (s *Server) SetBackend(b *Backend) { s.backend.Store(b) }

// acquire returns the current backend with a request registered on it.
func (s *Server) acquire() (*Backend, error) {
	for {
		b := s.backend.Load()
		if b == nil {
			return nil, status.Error(codes.Unavailable, "no configuration loaded")
		}
		if b.acquire() {
			return b, nil
		}
		// b is draining: a reload installed a new backend in between, or
		// the daemon is shutting down and there is none to move to.
		if s.backend.Load() == b {
			return nil, status.Error(codes.Unavailable, "shutting down")
		}
	}
}

// withBackend runs f with the current backend held, and releases it even
// when f panics (the recovery interceptor turns the panic into INTERNAL;
// a leaked hold would make the backend's Drain wait for ever).
func (s *Server) withBackend(f func(b *Backend)) error {
	b, err := s.acquire()
	if err != nil {
		return err
	}
	defer b.release()
	f(b)
	return nil
}

// Start opens the listener and serves in the background until Shutdown.
// A plaintext TCP listener on a non-loopback address is refused unless
// allow_plaintext_remote is set, and then logged loudly: passwords would
// cross the network in the clear.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("grpc: already started")
	}
	ln, err := listen(s.cfg.Listen)
	if err != nil {
		return err
	}
	if s.tls.Load() == nil {
		if ta, ok := ln.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() {
			if !s.cfg.AllowPlaintextRemote {
				_ = ln.Close()
				return fmt.Errorf("grpc: listen = %s is not a loopback address and TLS is off; set tls_cert_file and tls_key_file, or allow_plaintext_remote = yes", s.cfg.Listen)
			}
			s.log.Warn("GRPC LISTENS WITHOUT TLS ON A NON-LOOPBACK ADDRESS: passwords cross the network in clear text (allow_plaintext_remote = yes)", "listen", ln.Addr().String())
		}
	}
	capped := newCapListener(ln, s.cfg.MaxConnections, s.log)
	s.ln = capped
	s.started = true
	s.serveErr = make(chan error, 1)
	go func() {
		err := s.gs.Serve(capped)
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
		s.serveErr <- err
	}()
	if s.opts.Ready != nil {
		s.stopPoll = make(chan struct{})
		s.pollDone = make(chan struct{})
		go s.pollReadiness()
	}
	mode := "plaintext"
	switch {
	case s.cfg.TLSClientCAFile != "":
		mode = "mTLS"
	case s.cfg.TLSCertFile != "":
		mode = "TLS"
	}
	s.log.Info("grpc listening", "addr", ln.Addr().String(), "security", mode)
	return nil
}

// listen opens a TCP address or, with a "unix:" prefix, a unix socket.
func listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("grpc: listen %s: %w", addr, err)
		}
		return ln, nil
	}
	// Accept unix:///path as well as unix:/path, the two spellings of
	// gRPC's own naming.
	if p, ok := strings.CutPrefix(path, "//"); ok {
		path = p
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("grpc: listen %s: the path exists and is not a socket", addr)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("grpc: listen %s: another process is listening on this socket", addr)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("grpc: listen %s: %w", addr, err)
	}
	// Owner and group only: local services that may use the API join
	// authd's group (docs/operations.md).
	if err := os.Chmod(path, 0o660); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("grpc: listen %s: %w", addr, err)
	}
	return ln, nil
}

// Addr is the listener's address (useful with port 0); nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Reload applies a new grpc { } section. Certificate, key and client CA
// are re-read from their files (also when the paths did not change:
// renewed certificates take effect on SIGHUP) and used by the next
// handshake; connections already open keep theirs. The roles,
// request_timeout and max_delayed_answers apply to the next request. A
// change of address, TLS on/off, allow_plaintext_remote, reflection or a
// limit the gRPC server was built with returns ErrRestartRequired; a
// file that cannot be read returns its error and nothing changes.
func (s *Server) Reload(cfg config.GRPC) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg = withLimitDefaults(cfg)
	if restartNeeded(s.cfg, cfg) {
		return ErrRestartRequired
	}
	if cfg.TLSCertFile != "" {
		tc, err := loadTLS(cfg)
		if err != nil {
			return err
		}
		s.tls.Store(tc)
	}
	s.policy.Store(newPolicy(cfg))
	s.reqTimeout.Store(int64(cfg.RequestTimeout))
	s.delay.limit.Store(int64(cfg.MaxDelayedAnswers))
	s.cfg = cfg
	return nil
}

// Config is the grpc { } section in effect, limits at their defaults
// where it left them zero.
func (s *Server) Config() config.GRPC {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// restartNeeded reports whether going from a to b changes something the
// listener or the grpc.Server was built with.
func restartNeeded(a, b config.GRPC) bool {
	return a.Listen != b.Listen || (a.TLSCertFile == "") != (b.TLSCertFile == "") ||
		a.AllowPlaintextRemote != b.AllowPlaintextRemote || a.Reflection != b.Reflection ||
		a.MaxConnections != b.MaxConnections || a.MaxStreams != b.MaxStreams || a.MaxMessageSize != b.MaxMessageSize ||
		a.HandshakeTimeout != b.HandshakeTimeout || a.IdleTimeout != b.IdleTimeout || a.KeepaliveMinTime != b.KeepaliveMinTime
}

// Shutdown stops accepting, answers every delayed failure at once, lets
// running RPCs finish until ctx ends (then cuts them), and returns when the
// listener is closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil
	}
	s.stopping = true
	started := s.started
	s.mu.Unlock()

	s.health.Shutdown()
	if s.stopPoll != nil {
		close(s.stopPoll)
		<-s.pollDone
	}
	s.delay.release()
	done := make(chan struct{})
	go func() {
		s.gs.GracefulStop()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.gs.Stop()
		<-done
		err = fmt.Errorf("grpc: shutdown cut requests still running: %w", ctx.Err())
	}
	if werr := s.waitWorkers(ctx); werr != nil && err == nil {
		err = werr
	}
	if started {
		if serr := <-s.serveErr; serr != nil && err == nil {
			err = serr
		}
	}
	return err
}

// waitWorkers waits, until ctx ends, for the engine work of requests
// already answered; no new one starts.
func (s *Server) waitWorkers(ctx context.Context) error {
	s.wmu.Lock()
	s.workersDone = true
	s.wmu.Unlock()
	done := make(chan struct{})
	go func() {
		s.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		// The workers end with their engine call, bounded by
		// request_timeout; the backend's Drain waits for them too.
		return fmt.Errorf("grpc: shutdown left engine work running: %w", ctx.Err())
	}
}

// DelayedFailures is the number of Authenticate answers held back:
// failures waiting for auth_failure_delay, and the answers of clients
// whose deadline is shorter than that delay.
func (s *Server) DelayedFailures() int { return s.delay.Len() }

// Stats are the listener's refusals, for metrics and tests.
type Stats struct {
	// RefusedConnections: connections closed at accept because
	// max_connections were open.
	RefusedConnections int64
	// UndelayedAnswers: answers sent at once because
	// max_delayed_answers were held already.
	UndelayedAnswers int64
	// AnsweredAtCut: Authenticate answers given shortly before the
	// client's deadline because the client would not wait for a
	// failure's delay (auth.go).
	AnsweredAtCut int64
}

// Stats returns the counters since New.
func (s *Server) Stats() Stats {
	st := Stats{UndelayedAnswers: s.delay.skipped.Load(), AnsweredAtCut: s.cutAnswers.Load()}
	s.mu.Lock()
	if s.ln != nil {
		st.RefusedConnections = s.ln.refused.Load()
	}
	s.mu.Unlock()
	return st
}

// updateReadiness sets the service's health from Ready.
func (s *Server) updateReadiness() {
	st := healthpb.HealthCheckResponse_SERVING
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
	}
	s.health.SetServingStatus(serviceName, st)
}

func (s *Server) pollReadiness() {
	defer close(s.pollDone)
	t := time.NewTicker(readyInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopPoll:
			return
		case <-t.C:
			s.updateReadiness()
		}
	}
}

// recoverUnary keeps a panicking handler from taking the process down
// (docs/architecture.md, house rule 2).
func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer s.recovered(info.FullMethod, &err)
	return h(srv, ss)
}

func (s *Server) recovered(method string, err *error) {
	if r := recover(); r != nil {
		if s.opts.Panics != nil {
			s.opts.Panics.Add(1)
		}
		s.log.Error("panic in grpc request", "method", method, "panic", r, "stack", string(debug.Stack()))
		*err = status.Error(codes.Internal, "internal error")
	}
}

// connCounter reports gRPC connections to the Observer.
type connCounter struct{ obs Observer }

func (c connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c connCounter) HandleRPC(context.Context, stats.RPCStats)                       {}
func (c connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (c connCounter) HandleConn(_ context.Context, st stats.ConnStats) {
	if c.obs == nil {
		return
	}
	switch st.(type) {
	case *stats.ConnBegin:
		c.obs.ConnOpened("grpc")
	case *stats.ConnEnd:
		c.obs.ConnClosed("grpc")
	}
}
