package grpcserver_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
)

// h2conn is a raw HTTP/2 client: it does what grpc-go's client never
// would (open more streams than allowed, ping in a loop), to see what the
// server does about it.
type h2conn struct {
	t  *testing.T
	nc net.Conn
	fr *http2.Framer
	// settings the server announced.
	settings map[http2.SettingID]uint32
}

// dialH2 connects to a plaintext listener and exchanges SETTINGS.
func dialH2(t *testing.T, addr string) *h2conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	// Generous: a server that never answers fails the test, not hangs it.
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	c := &h2conn{t: t, nc: nc, fr: http2.NewFramer(nc, nc), settings: map[http2.SettingID]uint32{}}
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for {
		f := c.read()
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error {
				c.settings[s.ID] = s.Val
				return nil
			})
			if err := c.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}

func (c *h2conn) read() http2.Frame {
	c.t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("reading from the server: %v", err)
	}
	return f
}

// openStream sends the HEADERS of an Authenticate call and no message,
// so the stream stays open.
func (c *h2conn) openStream(id uint32) {
	c.t.Helper()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", authdv1.AuthService_Authenticate_FullMethodName},
		{":authority", "authd"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: buf.Bytes(), EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// TestMaxConcurrentStreams: the server announces max_streams (128 by
// default, where grpc-go would allow 2^32-1) and refuses a stream beyond
// it with REFUSED_STREAM; grpc-go clients heed the setting and queue
// their calls instead, which all complete.
func TestMaxConcurrentStreams(t *testing.T) {
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	c := dialH2(t, srv.Addr().String())
	if got := c.settings[http2.SettingMaxConcurrentStreams]; got != config.DefaultGRPCMaxStreams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", got, config.DefaultGRPCMaxStreams)
	}
	const n = config.DefaultGRPCMaxStreams + 1
	for i := range uint32(n) {
		c.openStream(2*i + 1)
	}
	for {
		if rst, ok := c.read().(*http2.RSTStreamFrame); ok {
			if rst.StreamID != 2*(n-1)+1 || rst.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("RST_STREAM %d %v, want stream %d refused", rst.StreamID, rst.ErrCode, 2*(n-1)+1)
			}
			break
		}
	}

	// A well-behaved client with more calls than max_streams queues them.
	const limit, calls = 4, 12
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	eng := &fakeEngine{verify: func(_ context.Context, _ *engine.Info, _, authcid string) engine.Result {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inFlight.Add(-1)
		return engine.Result{Status: engine.StatusOK, User: authcid}
	}}
	srv2 := startGRPC(t, config.GRPC{MaxStreams: limit}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	client := dial(t, srv2, nil)
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			_, err := client.Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")})
			errs <- err
		})
	}
	waitFor(t, "max_streams calls in the engine", func() bool { return inFlight.Load() == limit })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("queued call: %v", err)
		}
	}
	if most.Load() > limit {
		t.Errorf("%d calls ran at once on one connection, max_streams %d", most.Load(), limit)
	}
}

// TestKeepalivePolicy: a client that pings faster than keepalive_min_time
// is sent GOAWAY (ENHANCE_YOUR_CALM, "too_many_pings") and dropped.
func TestKeepalivePolicy(t *testing.T) {
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	c := dialH2(t, srv.Addr().String())
	for i := range 10 {
		if err := c.fr.WritePing(false, [8]byte{byte(i)}); err != nil {
			break // the server may have closed already
		}
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeEnhanceYourCalm || string(ga.DebugData()) != "too_many_pings" {
				t.Errorf("GOAWAY %v %q", ga.ErrCode, ga.DebugData())
			}
			return
		}
	}
}

// TestIdleTimeout: a connection with no call for idle_timeout is closed
// by the server (GOAWAY: the client goes idle and reconnects when needed).
func TestIdleTimeout(t *testing.T) {
	srv := startGRPC(t, config.GRPC{IdleTimeout: 100 * time.Millisecond}, grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	conn := dialConn(t, srv.Addr().String(), nil)
	if err := authOK(t, authdv1.NewAuthServiceClient(conn)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for s := conn.GetState(); s != connectivity.Idle; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("the idle connection stayed %v", s)
		}
	}
	if err := authOK(t, authdv1.NewAuthServiceClient(conn)); err != nil {
		t.Errorf("after reconnecting: %v", err)
	}
}

// TestMaxMessageSize: a request over max_message_size (64 KiB by
// default) is refused with RESOURCE_EXHAUSTED before it is decoded; one
// just under it reaches the handler's own checks.
func TestMaxMessageSize(t *testing.T) {
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	c := dial(t, srv, nil)
	ctx := context.Background()
	_, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: make([]byte, 1<<20)})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("1 MiB request: %v, want RESOURCE_EXHAUSTED", err)
	}
	_, err = c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: bytes.Repeat([]byte("x"), 60<<10)})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("60 KiB request: %v, want INVALID_ARGUMENT (password too long)", err)
	}
	if err := authOK(t, c); err != nil {
		t.Errorf("after the refusals: %v", err)
	}
}

// TestTLSHandshakeTimeout: a TLS client that stalls in the middle of its
// handshake is cut at handshake_timeout (5 s by default; grpc-go's own
// default is 120 s).
func TestTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	files := newTLSFiles(t)
	srv := startGRPC(t, config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey},
		grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	nc, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	start := time.Now()
	// A TLS record header announcing a 512-byte ClientHello, and 10 of
	// its bytes.
	if _, err := nc.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stalled handshake was still open after 30 s")
	}
	if d := time.Since(start); d < config.DefaultGRPCHandshakeTimeout-100*time.Millisecond {
		t.Errorf("cut after %v, before handshake_timeout %v", d, config.DefaultGRPCHandshakeTimeout)
	}
}

// TestConnectionCap: past max_connections a connection is closed as soon
// as it is accepted, and counted; once one closes, a new client is served.
func TestConnectionCap(t *testing.T) {
	const limit = 3
	// Held connections send nothing; a long handshake_timeout keeps them.
	srv := startGRPC(t, config.GRPC{MaxConnections: limit, HandshakeTimeout: time.Minute},
		grpcserver.NewBackend(newEngine(t, testUsers), nil, 0), grpcserver.Options{})
	addr := srv.Addr().String()
	var held []net.Conn
	for range limit {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		held = append(held, nc)
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("connection %d: read %v, want EOF (closed by the server)", limit+1, err)
	}
	if n := srv.Stats().RefusedConnections; n != 1 {
		t.Errorf("refused %d, want 1", n)
	}
	// The held ones still count: a real client is refused too...
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authdv1.NewAuthServiceClient(cc).Authenticate(short, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("secret")}); err == nil {
		t.Error("a client past max_connections was served")
	}
	cc.Close()
	// ...until one of them goes.
	held[0].Close()
	waitFor(t, "a client to be served after a connection closed", func() bool {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = authdv1.NewAuthServiceClient(cc).Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("secret")})
		return err == nil
	})
}

// TestDelayedAnswersCap: at most max_delayed_answers failures wait for
// auth_failure_delay; past that a failure is answered at once, and
// counted.
func TestDelayedAnswersCap(t *testing.T) {
	eng := newEngineSet(t, testUsers, engine.Settings{FailureDelay: time.Minute})
	srv := startGRPC(t, config.GRPC{MaxDelayedAnswers: 2}, grpcserver.NewBackend(eng, nil, 15*time.Minute), grpcserver.Options{})
	c := dial(t, srv, nil)
	ctx := context.Background()
	wrong := func(user string) (*authdv1.AuthenticateResponse, error) {
		return c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: user, Password: []byte("wrong")})
	}
	waiting := make(chan error, 2)
	for _, u := range []string{"alice@example.com", "nobody@example.com"} {
		go func() {
			_, err := wrong(u)
			waiting <- err
		}()
	}
	waitFor(t, "two failures held", func() bool { return srv.DelayedFailures() == 2 })
	resp, err := wrong("bob@example.com")
	if err != nil || resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_FAILED {
		t.Fatalf("past the cap: %v %v, want FAILED", resp.GetResult(), err)
	}
	if n := srv.DelayedFailures(); n != 2 {
		t.Errorf("%d held after the answer past the cap, want 2 (still waiting their minute)", n)
	}
	if st := srv.Stats(); st.UndelayedAnswers != 1 {
		t.Errorf("UndelayedAnswers %d, want 1", st.UndelayedAnswers)
	}
	// Shutdown answers the held ones at once.
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-waiting; err != nil {
			t.Errorf("held failure: %v", err)
		}
	}
}

// TestReflectionOffByDefault: reflection lists the API to anyone who
// asks, so it is served only with reflection = yes.
func TestReflectionOffByDefault(t *testing.T) {
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(statusEngine(engine.StatusOK), nil, 0), grpcserver.Options{})
	r := reflectionpb.NewServerReflectionClient(dialConn(t, srv.Addr().String(), nil))
	st, err := r.ServerReflectionInfo(context.Background())
	if err == nil {
		// A refused stream's Send says EOF; Recv has the status.
		_ = st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		_, err = st.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("reflection without reflection = yes: %v, want UNIMPLEMENTED", err)
	}
}
