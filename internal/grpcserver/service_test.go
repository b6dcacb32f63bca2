package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/grpcserver"
)

// fakeEngine answers from functions, for behaviour the passwd-file cannot
// produce (disabled users, slow or panicking backends).
type fakeEngine struct {
	verify func(ctx context.Context, info *engine.Info, authzid, authcid string) engine.Result
	user   func(ctx context.Context, name string) engine.Result
	list   func(ctx context.Context, mask string, fn func(string) bool) error
	// finish, when set, is FinishAuth.
	finish func(info *engine.Info, res engine.Result) time.Time
	// abandoned counts AbandonAuth calls.
	abandoned atomic.Int64
}

func (f *fakeEngine) AbandonAuth(*engine.Info) { f.abandoned.Add(1) }

func (f *fakeEngine) VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, _ []byte) engine.Result {
	return f.verify(ctx, info, authzid, authcid)
}
func (f *fakeEngine) LookupPassdb(ctx context.Context, _ *engine.Info, name string) engine.Result {
	return f.user(ctx, name)
}
func (f *fakeEngine) LookupUser(ctx context.Context, _ *engine.Info, name string, _ fields.Fields) engine.Result {
	return f.user(ctx, name)
}
func (f *fakeEngine) LookupUserFinal(ctx context.Context, _ *engine.Info, user, _ string, _ fields.Fields) engine.Result {
	return f.user(ctx, user)
}
func (f *fakeEngine) ListUsers(ctx context.Context, mask string, fn func(string) bool) error {
	return f.list(ctx, mask, fn)
}

// FinishAuth delays nothing unless finish says otherwise: the fakes test
// the mapping, not the delay.
func (f *fakeEngine) FinishAuth(info *engine.Info, res engine.Result, _ time.Duration) time.Time {
	if f.finish != nil {
		return f.finish(info, res)
	}
	return time.Time{}
}

func statusEngine(st engine.Status) *fakeEngine {
	return &fakeEngine{
		verify: func(_ context.Context, _ *engine.Info, _, authcid string) engine.Result {
			return engine.Result{Status: st, User: authcid}
		},
		user: func(_ context.Context, name string) engine.Result { return engine.Result{Status: st, User: name} },
	}
}

func TestStatusMapping(t *testing.T) {
	for _, tc := range []struct {
		st         engine.Status
		auth       authdv1.AuthResult
		authCode   codes.Code
		lookupCode codes.Code
		passFound  bool
	}{
		{engine.StatusOK, authdv1.AuthResult_AUTH_RESULT_OK, codes.OK, codes.OK, true},
		{engine.StatusFail, authdv1.AuthResult_AUTH_RESULT_FAILED, codes.OK, codes.PermissionDenied, false},
		{engine.StatusUserDisabled, authdv1.AuthResult_AUTH_RESULT_USER_DISABLED, codes.OK, codes.OK, false},
		{engine.StatusPassExpired, authdv1.AuthResult_AUTH_RESULT_PASSWORD_EXPIRED, codes.OK, codes.OK, false},
		{engine.StatusAuthzFail, authdv1.AuthResult_AUTH_RESULT_AUTHZ_FAILED, codes.OK, codes.PermissionDenied, false},
		{engine.StatusTempFail, 0, codes.Unavailable, codes.Unavailable, false},
		{engine.StatusNotFound, authdv1.AuthResult_AUTH_RESULT_FAILED, codes.OK, codes.OK, false},
	} {
		t.Run(tc.st.String(), func(t *testing.T) {
			srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(statusEngine(tc.st), nil, 0), grpcserver.Options{})
			c := dial(t, srv, nil)
			ctx := context.Background()
			resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")})
			if status.Code(err) != tc.authCode || resp.GetResult() != tc.auth {
				t.Errorf("Authenticate: %v %v, want %v %v", resp.GetResult(), err, tc.auth, tc.authCode)
			}
			pr, err := c.LookupPassdb(ctx, &authdv1.LookupPassdbRequest{User: "u"})
			if status.Code(err) != tc.lookupCode || pr.GetFound() != tc.passFound {
				t.Errorf("LookupPassdb: found=%v %v, want %v %v", pr.GetFound(), err, tc.passFound, tc.lookupCode)
			}
		})
	}
}

// TestFailureDelay: failures wait auth_failure_delay without holding up
// anything else; nodelay, temporary failures and successes do not wait;
// shutdown answers the waiting ones at once.
func TestFailureDelay(t *testing.T) {
	const delay = time.Second
	eng := newEngineSet(t, testUsers, engine.Settings{FailureDelay: delay})
	rec := &recorder{}
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(eng, nil, 15*time.Second), grpcserver.Options{Observer: rec})
	c := dial(t, srv, nil)
	ctx := context.Background()

	start := time.Now()
	failed := make(chan error, 1)
	go func() {
		resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("wrong")})
		if err == nil && resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_FAILED {
			err = fmt.Errorf("result %v", resp.GetResult())
		}
		failed <- err
	}()
	waitFor(t, "the failure to be queued", func() bool { return srv.DelayedFailures() == 1 })
	// While it waits, other requests on the same connection go through.
	for _, u := range []struct {
		user, pass string
		want       authdv1.AuthResult // UNSPECIFIED: a gRPC UNAVAILABLE error
	}{
		{"alice@example.com", "secret", authdv1.AuthResult_AUTH_RESULT_OK},        // success
		{"nd@example.com", "wrong", authdv1.AuthResult_AUTH_RESULT_FAILED},        // nodelay
		{"bad@example.com", "secret", authdv1.AuthResult_AUTH_RESULT_UNSPECIFIED}, // temporary failure
		{"nobody@example.com", "secret", authdv1.AuthResult_AUTH_RESULT_FAILED},   // delayed too, in parallel
	} {
		if u.user == "nobody@example.com" {
			go c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: u.user, Password: []byte(u.pass)})
			continue
		}
		resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: u.user, Password: []byte(u.pass)})
		if u.want == authdv1.AuthResult_AUTH_RESULT_UNSPECIFIED {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s: %v %v, want UNAVAILABLE", u.user, resp.GetResult(), err)
			}
		} else if err != nil || resp.GetResult() != u.want {
			t.Errorf("%s: %v %v, want %v", u.user, resp.GetResult(), err, u.want)
		}
		if n := srv.DelayedFailures(); n < 1 {
			t.Fatalf("%s answered only after the delayed failure (queue %d)", u.user, n)
		}
	}
	if err := <-failed; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < delay {
		t.Errorf("a failure was answered after %v, before auth_failure_delay %v", d, delay)
	}
	waitFor(t, "five requests observed", func() bool { return rec.auth.Load() == 5 })
	waitFor(t, "the queue to empty", func() bool { return srv.DelayedFailures() == 0 })

	// A client whose deadline ends before the delay gets DEADLINE_EXCEEDED,
	// not the answer.
	dctx, cancel := context.WithTimeout(ctx, delay/3)
	defer cancel()
	if _, err := c.Authenticate(dctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("wrong")}); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("deadline shorter than the delay: %v", err)
	}

	// Shutdown answers what waits.
	go c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("wrong")})
	waitFor(t, "the failure to be queued", func() bool { return srv.DelayedFailures() == 1 })
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if n := srv.DelayedFailures(); n != 0 {
		t.Errorf("%d failures still waiting after Shutdown", n)
	}
}

// TestDeadline: the request's context reaches the engine, and a deadline
// that ends inside the engine is reported as such, not as UNAVAILABLE.
func TestDeadline(t *testing.T) {
	var sawDeadline atomic.Bool
	eng := &fakeEngine{verify: func(ctx context.Context, _ *engine.Info, _, _ string) engine.Result {
		_, ok := ctx.Deadline()
		sawDeadline.Store(ok)
		<-ctx.Done() // a backend that hangs until the request gives up
		return engine.Result{Status: engine.StatusTempFail}
	}}
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	c := dial(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("got %v, want DEADLINE_EXCEEDED", err)
	}
	if !sawDeadline.Load() {
		t.Error("the engine's context had no deadline")
	}

	// Without a client deadline, request_timeout bounds the request.
	srv2 := startGRPC(t, config.GRPC{RequestTimeout: 50 * time.Millisecond}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	_, err = dial(t, srv2, nil).Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("server timeout: got %v, want DEADLINE_EXCEEDED", err)
	}
}

// TestBackendSwap: a reload's new backend takes new requests while the old
// one's requests finish, and Drain waits for them.
func TestBackendSwap(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	oldEng := &fakeEngine{verify: func(context.Context, *engine.Info, string, string) engine.Result {
		entered <- struct{}{}
		<-release
		return engine.Result{Status: engine.StatusOK, User: "old"}
	}}
	newEng := &fakeEngine{verify: func(context.Context, *engine.Info, string, string) engine.Result {
		return engine.Result{Status: engine.StatusOK, User: "new"}
	}}
	oldB := grpcserver.NewBackend(oldEng, nil, 0)
	srv := startGRPC(t, config.GRPC{}, oldB, grpcserver.Options{})
	c := dial(t, srv, nil)
	ctx := context.Background()

	done := make(chan string, 1)
	go func() {
		resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")})
		if err != nil {
			done <- err.Error()
			return
		}
		done <- resp.GetUser()
	}()
	<-entered
	srv.SetBackend(grpcserver.NewBackend(newEng, nil, 0))
	resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")})
	if err != nil || resp.GetUser() != "new" {
		t.Fatalf("after SetBackend: %v %v", resp.GetUser(), err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := oldB.Drain(short); err == nil {
		t.Fatal("Drain returned while a request still used the old engine")
	}
	close(release)
	if err := oldB.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != "old" {
		t.Errorf("the running request got %q", got)
	}

	// A drained current backend (shutdown) answers UNAVAILABLE.
	b := grpcserver.NewBackend(newEng, nil, 0)
	srv.SetBackend(b)
	b.Drain(ctx)
	if _, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u", Password: []byte("p")}); status.Code(err) != codes.Unavailable {
		t.Errorf("after the last backend drained: %v", err)
	}
}

func TestPanicRecovered(t *testing.T) {
	var panics atomic.Int64
	eng := &fakeEngine{verify: func(_ context.Context, _ *engine.Info, _, authcid string) engine.Result {
		if authcid == "boom" {
			panic("test panic")
		}
		return engine.Result{Status: engine.StatusOK, User: authcid}
	}}
	b := grpcserver.NewBackend(eng, nil, 0)
	srv := startGRPC(t, config.GRPC{}, b, grpcserver.Options{Panics: &panics})
	c := dial(t, srv, nil)
	ctx := context.Background()
	if _, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "boom", Password: []byte("p")}); status.Code(err) != codes.Internal {
		t.Errorf("panicking request: %v, want INTERNAL", err)
	}
	if panics.Load() != 1 {
		t.Errorf("panics = %d", panics.Load())
	}
	if n := eng.abandoned.Load(); n != 1 {
		t.Errorf("the panicking request's attempt was abandoned %d times, want 1", n)
	}
	if _, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "fine", Password: []byte("p")}); err != nil {
		t.Errorf("after a panic: %v", err)
	}
	// The panicking request let go of its backend: a reload can drain it.
	srv.SetBackend(grpcserver.NewBackend(eng, nil, 0))
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.Drain(dctx); err != nil {
		t.Errorf("Drain after a panic: %v", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(statusEngine(engine.StatusOK), nil, 0), grpcserver.Options{})
	c := dial(t, srv, nil)
	long := string(make([]byte, 2000))
	for name, req := range map[string]*authdv1.AuthenticateRequest{
		"empty user":     {Password: []byte("p")},
		"NUL in user":    {User: "a\x00b", Password: []byte("p")},
		"long user":      {User: "a" + long},
		"NUL in pass":    {User: "u", Password: []byte("a\x00b")},
		"bad service":    {User: "u", Info: &authdv1.RequestInfo{Service: "../etc"}},
		"bad remote ip":  {User: "u", Info: &authdv1.RequestInfo{RemoteIp: "example.com"}},
		"bad port":       {User: "u", Info: &authdv1.RequestInfo{RemotePort: 70000}},
		"ctl in session": {User: "u", Info: &authdv1.RequestInfo{Session: "a\nb"}},
	} {
		if _, err := c.Authenticate(context.Background(), req); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
}

// TestRequestInfo: the request's connection data from a trusted caller
// reaches the engine, and without remote_ip the gRPC peer's address
// stands in for it.
func TestRequestInfo(t *testing.T) {
	infos := make(chan engine.Info, 2)
	eng := &fakeEngine{verify: func(_ context.Context, info *engine.Info, _, _ string) engine.Result {
		infos <- *info
		return engine.Result{Status: engine.StatusOK}
	}}
	files := newTLSFiles(t)
	srv := startGRPC(t, config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey, TLSClientCAFile: files.ca.CertFile,
		TrustedClients: []string{"webmail.example.com"}}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	c := dial(t, srv, files.clientTLS(t, true))
	ctx := context.Background()
	c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u", Info: &authdv1.RequestInfo{
		Service: "caldav", LocalIp: "192.0.2.2", LocalPort: 443, RemoteIp: "::ffff:198.51.100.7", RemotePort: 50000, Secured: true, Session: "s1",
	}})
	got := <-infos
	if got.Mech != "PLAIN" || got.Service != "caldav" || got.LocalIP != "192.0.2.2" || got.LocalPort != "443" ||
		got.RemoteIP != "198.51.100.7" || got.RemotePort != "50000" || got.Secured != "secured" || got.Session != "s1" ||
		got.RealRemoteIP != "127.0.0.1" {
		t.Errorf("info %+v", got)
	}
	c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "u"})
	got = <-infos
	if got.Service != "authd" || got.RemoteIP != "127.0.0.1" || got.RemotePort == "" || got.LocalIP != "127.0.0.1" {
		t.Errorf("defaults %+v", got)
	}
}

func TestLookupUserdbAfterLogin(t *testing.T) {
	eng := newEngine(t, testUsers)
	srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	c := dial(t, srv, nil)
	resp, err := c.Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("secret"), LookupUserdb: true})
	if err != nil {
		t.Fatal(err)
	}
	got := protoFieldStrings(resp.GetUserdbFields())
	want := []string{"uid=1000", "gid=1000", "home=/home/alice", "mail=maildir:~/Maildir"}
	if resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_OK || !slices.Equal(got, want) {
		t.Errorf("got %v %q, want OK %q", resp.GetResult(), got, want)
	}

	// A right password for a user the userdb does not know fails like a
	// wrong password; a userdb that cannot tell is UNAVAILABLE.
	for st, code := range map[engine.Status]codes.Code{engine.StatusNotFound: codes.OK, engine.StatusTempFail: codes.Unavailable} {
		fe := &fakeEngine{
			verify: func(_ context.Context, _ *engine.Info, _, authcid string) engine.Result {
				return engine.Result{Status: engine.StatusOK, User: authcid, Fields: fields.Fields{{Key: "home_server", Value: "a"}}}
			},
			user: func(context.Context, string) engine.Result { return engine.Result{Status: st} },
		}
		srv := startGRPC(t, config.GRPC{}, grpcserver.NewBackend(fe, nil, 0), grpcserver.Options{})
		resp, err := dial(t, srv, nil).Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: "u", Password: []byte("p"), LookupUserdb: true})
		if status.Code(err) != code {
			t.Errorf("userdb %v: %v", st, err)
		}
		if err == nil && (resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_FAILED || len(resp.GetFields()) != 0 || len(resp.GetUserdbFields()) != 0) {
			t.Errorf("userdb %v: %v", st, resp)
		}
	}
}

func TestListUsers(t *testing.T) {
	var users []string
	for i := range 1000 {
		users = append(users, fmt.Sprintf("user%04d@example.com", i))
	}
	eng := &fakeEngine{list: func(ctx context.Context, mask string, fn func(string) bool) error {
		if mask == "fail" {
			return errors.New("ldap down")
		}
		if mask == "none" {
			return engine.ErrNoIterate
		}
		for _, u := range users {
			if !fn(u) {
				return nil
			}
		}
		return nil
	}}
	rec := &recorder{}
	c := adminClient(t, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{Observer: rec})
	ctx := context.Background()
	st, err := c.ListUsers(ctx, &authdv1.ListUsersRequest{Mask: "*"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	batches := 0
	for {
		m, err := st.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		batches++
		got = append(got, m.GetUsers()...)
	}
	if !slices.Equal(got, users) || batches != 4 {
		t.Errorf("got %d users in %d batches", len(got), batches)
	}
	for mask, want := range map[string]codes.Code{"fail": codes.Unavailable, "none": codes.FailedPrecondition} {
		st, err := c.ListUsers(ctx, &authdv1.ListUsersRequest{Mask: mask})
		if err == nil {
			_, err = st.Recv()
		}
		if status.Code(err) != want {
			t.Errorf("mask %s: %v, want %v", mask, err, want)
		}
	}
	if rec.lookup.Load() != 3 {
		t.Errorf("observer saw %d lookups", rec.lookup.Load())
	}
}

type countingCache struct{ calls [][]string }

func (c *countingCache) Flush(users []string) int {
	c.calls = append(c.calls, users)
	return 7
}

func TestFlushCache(t *testing.T) {
	cache := &countingCache{}
	c := adminClient(t, grpcserver.NewBackend(statusEngine(engine.StatusOK), cache, 0), grpcserver.Options{})
	resp, err := c.FlushCache(context.Background(), &authdv1.FlushCacheRequest{Users: []string{"alice@example.com"}})
	if err != nil || resp.GetRemoved() != 7 || len(cache.calls) != 1 || cache.calls[0][0] != "alice@example.com" {
		t.Errorf("flush: %v %v %v", resp, err, cache.calls)
	}
	// No cache: nothing to flush, like CACHE-FLUSH on the master socket.
	c2 := adminClient(t, grpcserver.NewBackend(statusEngine(engine.StatusOK), nil, 0), grpcserver.Options{})
	resp, err = c2.FlushCache(context.Background(), &authdv1.FlushCacheRequest{})
	if err != nil || resp.GetRemoved() != 0 {
		t.Errorf("flush without cache: %v %v", resp, err)
	}
}

func TestHealthAndReflection(t *testing.T) {
	var notReady atomic.Bool
	notReady.Store(true)
	ready := func() error {
		if notReady.Load() {
			return errors.New("ldap: no answer")
		}
		return nil
	}
	rec := &recorder{}
	srv := startGRPC(t, config.GRPC{Reflection: true}, grpcserver.NewBackend(statusEngine(engine.StatusOK), nil, 0), grpcserver.Options{Ready: ready, Observer: rec})
	conn := dialConn(t, srv.Addr().String(), nil)
	ctx := context.Background()

	h := healthpb.NewHealthClient(conn)
	resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("overall health: %v %v", resp, err)
	}
	resp, err = h.Check(ctx, &healthpb.HealthCheckRequest{Service: "authd.v1.AuthService"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("service health with a backend down: %v %v", resp, err)
	}

	r := reflectionpb.NewServerReflectionClient(conn)
	st, err := r.ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range m.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"authd.v1.AuthService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "authd.v1.AuthService"}}); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || len(m.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("reflection of authd.v1.AuthService: %v %v", m, err)
	}
	st.CloseSend()

	if rec.opened.Load() < 1 {
		t.Error("the connection was not reported to the observer")
	}
}
