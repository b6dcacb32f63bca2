package grpcserver_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
)

// The users of internal/dovecot's transcript tests (bob's bcrypt at the
// lowest cost, to keep the tests quick): OK, extra fields, nologin, proxy,
// nodelay, and a stored hash that cannot be checked (a temporary failure).
const testUsers = `alice@example.com:{PLAIN}secret:1000:1000::/home/alice::userdb_mail=maildir:~/Maildir
bob@example.com:{BLF-CRYPT}$2y$04$F60z4RlJeKO41ta4hq7SWetEQG9UHuMAQMh4XMw51ReqcjaSarSUC:1001:1001::/home/bob::
nl@example.com:{PLAIN}secret::::::nologin reason=Go_away
px@example.com:{PLAIN}secret::::::proxy host=10.0.0.5 port=143 nodelay
nd@example.com:{PLAIN}secret::::::nodelay
bad@example.com:{SSHA}!!notbase64!!
`

// newEngine builds an engine over a passwd-file holding body, or over a
// path that does not exist when body is "" (a backend that is down: every
// lookup is "could not tell").
func newEngine(t testing.TB, body string) *engine.Engine {
	t.Helper()
	return newEngineSet(t, body, engine.Settings{})
}

// newEngineSet is newEngine with engine settings (auth_failure_delay …).
func newEngineSet(t testing.TB, body string, set engine.Settings) *engine.Engine {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "users")
	if body != "" {
		path = filepath.Join(dir, "users")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := passwdfile.New("scheme=PLAIN "+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules := func(s engine.DBSpec) engine.DBSpec {
		s.ResultSuccess, s.ResultFailure, s.ResultInternalfail = config.RuleReturnOK, config.RuleContinue, config.RuleContinue
		return s
	}
	eng, err := engine.New(set,
		[]engine.DBSpec{rules(engine.DBSpec{Driver: "passwd-file", Passdb: db})},
		[]engine.DBSpec{rules(engine.DBSpec{Driver: "passwd-file", Userdb: db})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// startGRPC starts a Server for cfg (Listen defaults to 127.0.0.1:0) with
// backend b and returns it; it is shut down when the test ends.
func startGRPC(t testing.TB, cfg config.GRPC, b *grpcserver.Backend, o grpcserver.Options) *grpcserver.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	srv, err := grpcserver.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBackend(b)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("grpc shutdown: %v", err)
		}
	})
	return srv
}

// socketPath is a fresh unix socket path, short enough for sun_path (108
// bytes), removed when the test ends.
func socketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "authd-grpc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "grpc")
}

// startUnix starts a Server for cfg on a fresh unix socket and returns it
// with a client connected to it.
func startUnix(t testing.TB, cfg config.GRPC, b *grpcserver.Backend, o grpcserver.Options) (*grpcserver.Server, authdv1.AuthServiceClient) {
	t.Helper()
	cfg.Listen = "unix:" + socketPath(t)
	srv := startGRPC(t, cfg, b, o)
	return srv, authdv1.NewAuthServiceClient(dialConn(t, cfg.Listen, nil))
}

// myUID is the test process's uid, as a role list.
func myUID() []uint32 { return []uint32{uint32(os.Getuid())} }

// adminClient starts a Server over b on a unix socket where this process
// has the admin role, and returns a client of it.
func adminClient(t testing.TB, b *grpcserver.Backend, o grpcserver.Options) authdv1.AuthServiceClient {
	t.Helper()
	_, c := startUnix(t, config.GRPC{AdminUIDs: myUID()}, b, o)
	return c
}

// dial connects a client to srv with the given transport credentials
// (nil: plaintext).
func dial(t testing.TB, srv *grpcserver.Server, tc *tls.Config) authdv1.AuthServiceClient {
	t.Helper()
	return authdv1.NewAuthServiceClient(dialConn(t, srv.Addr().String(), tc))
}

func dialConn(t testing.TB, target string, tc *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sockets are the Dovecot-protocol servers of one engine.
type sockets struct {
	client, master string // unix socket paths
}

// startSockets serves the client protocol (PLAIN) and the master protocol
// on unix sockets over eng, with no failure delay.
func startSockets(t testing.TB, eng *engine.Engine) sockets {
	t.Helper()
	dir, err := os.MkdirTemp("", "authd-grpc-") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	shared := dovecot.NewShared(4242)
	cs := dovecot.NewClientServer(dovecot.ClientConfig{Engine: eng, Mechs: []sasl.Def{sasl.Defs["PLAIN"]}, Shared: shared})
	ms := dovecot.NewMasterServer(dovecot.MasterConfig{Engine: eng, Full: true, Shared: shared})
	s := sockets{client: filepath.Join(dir, "auth-client"), master: filepath.Join(dir, "auth-master")}
	testenv.ServeUnix(t, s.client, testenv.Served{Serve: cs.Serve, Shutdown: cs.Shutdown, Run: cs.Run})
	testenv.ServeUnix(t, s.master, testenv.Served{Serve: ms.Serve, Shutdown: ms.Shutdown})
	return s
}

// tlsFiles are a CA and a server and client certificate issued by it.
type tlsFiles struct {
	ca                    *testenv.CA
	serverCert, serverKey string
	clientCert, clientKey string
}

func newTLSFiles(t testing.TB) tlsFiles {
	t.Helper()
	ca := testenv.NewCA(t)
	dir := t.TempDir()
	f := tlsFiles{ca: ca}
	f.serverCert, f.serverKey = ca.Issue(t, dir, "server", "127.0.0.1", "localhost")
	f.clientCert, f.clientKey = ca.Issue(t, dir, "client", "webmail.example.com")
	return f
}

func (f tlsFiles) clientTLS(t testing.TB, withCert bool) *tls.Config {
	t.Helper()
	tc := f.ca.ClientConfig("127.0.0.1")
	if withCert {
		cert, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}

// recorder is an Observer that counts.
type recorder struct {
	auth, lookup, opened, closed atomic.Int64
	last                         atomic.Value // last auth status
}

func (r *recorder) AuthRequest(protocol, mech string, st engine.Status, d time.Duration) {
	r.auth.Add(1)
	r.last.Store(protocol + "/" + mech + "/" + st.String())
}
func (r *recorder) LookupRequest(protocol, command string, st engine.Status, d time.Duration) {
	r.lookup.Add(1)
}
func (r *recorder) ConnOpened(string) { r.opened.Add(1) }
func (r *recorder) ConnClosed(string) { r.closed.Add(1) }

// waitFor polls cond until it holds or the test's patience ends.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log sink that handlers may write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
