package cli

import (
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
)

// TestClientCommands pins what `authd test|user|lookup --grpc` print and
// their exit codes: doveadm's, the same as over the sockets (the parity is
// tested in cmd/authd against a running daemon).
func TestClientCommands(t *testing.T) {
	up := startGRPC(t, newEngine(t, testUsers)).Addr().String()
	down := startGRPC(t, newEngine(t, "")).Addr().String()
	// Listing users is for admins: a unix socket where this process's
	// uid has the role.
	admin := startAdminGRPC(t, newEngine(t, testUsers))
	adminDown := startAdminGRPC(t, newEngine(t, ""))
	// An address nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	type run func(t Target, ctx context.Context, out, errOut *strings.Builder) int
	test := func(user, pass string, params ...string) run {
		return func(t Target, ctx context.Context, out, errOut *strings.Builder) int {
			return Test(ctx, t, user, "", []byte(pass), params, out, errOut)
		}
	}
	user := func(name string, params ...string) run {
		return func(t Target, ctx context.Context, out, errOut *strings.Builder) int {
			return Lookup(ctx, t, UserLookup, name, params, out, errOut)
		}
	}
	lookup := func(name string) run {
		return func(t Target, ctx context.Context, out, errOut *strings.Builder) int {
			return Lookup(ctx, t, PassLookup, name, nil, out, errOut)
		}
	}
	for _, tc := range []struct {
		name    string
		addr    string
		run     run
		code    int
		out     string // exact stdout, or prefix when it ends in "…"
		errPart string
	}{
		{"test ok", up, test("alice@example.com", "secret", "service=imap", "rip=192.0.2.1"), 0,
			"passdb: alice@example.com auth succeeded\nextra fields:\n  user=alice@example.com\n", ""},
		{"test fields", up, test("nl@example.com", "secret"), 0,
			"passdb: nl@example.com auth succeeded\nextra fields:\n  user=nl@example.com\n  nologin\n  reason=Go_away\n", ""},
		{"test wrong password", up, test("alice@example.com", "wrong"), 77,
			"passdb: alice@example.com auth failed\nextra fields:\n  user=alice@example.com\n", ""},
		{"test unknown user", up, test("nobody@example.com", "secret"), 77,
			"passdb: nobody@example.com auth failed\nextra fields:\n  user=nobody@example.com\n", ""},
		{"test backend down", down, test("alice@example.com", "secret"), 75,
			"passdb: alice@example.com auth failed\n", "temporary authentication failure"},
		{"test server unreachable", closed, test("alice@example.com", "secret"), 75,
			"passdb: alice@example.com auth failed\n", "Unavailable"},
		{"test bad parameter", up, test("alice@example.com", "secret", "cert_username=x"), 64, "", "unknown parameter"},
		{"user ok", up, user("alice@example.com"), 0,
			"field\tvalue\nuser\talice@example.com\nuid\t1000\ngid\t1000\nhome\t/home/alice\nmail\tmaildir:~/Maildir\n", ""},
		{"user unknown", up, user("nobody@example.com"), 67, "", "user nobody@example.com doesn't exist"},
		{"user backend down", down, user("alice@example.com"), 75, "", "userdb lookup failed for alice@example.com"},
		{"user list", admin, user("*@example.com"), 0,
			"alice@example.com\nbob@example.com\nnl@example.com\npx@example.com\nnd@example.com\nbad@example.com\n", ""},
		{"user list backend down", adminDown, user("*"), 75, "", "listing users failed"},
		{"user list without the admin role", up, user("*"), 77, "", "needs the admin role"},
		{"lookup ok", up, lookup("px@example.com"), 0,
			"field\tvalue\nuser\tpx@example.com\nproxy\t\nhost\t10.0.0.5\nport\t143\nnodelay\t\n", ""},
		{"lookup unknown", up, lookup("nobody@example.com"), 67, "", "doesn't exist"},
		{"lookup backend down", down, lookup("alice@example.com"), 75, "", "passdb lookup failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var out, errOut strings.Builder
			code := tc.run(Target{GRPC: tc.addr}, ctx, &out, &errOut)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			if out.String() != tc.out {
				t.Errorf("stdout:\n%q\nwant\n%q", out.String(), tc.out)
			}
			if !strings.Contains(errOut.String(), tc.errPart) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tc.errPart)
			}
		})
	}
}

func TestDialClientTLSOptions(t *testing.T) {
	for _, o := range []TLSOptions{
		{CAFile: "/nonexistent/ca.pem"},
		{CertFile: "/nonexistent/c.pem"},
		{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/c.key"},
	} {
		if c, err := dialGRPC("127.0.0.1:1", o); err == nil {
			c.Close()
			t.Errorf("%+v: no error", o)
		}
	}
}

func TestTLSFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var o TLSOptions
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "c.key", "--tls-server-name", "mx1", "--tls"}); err != nil {
		t.Fatal(err)
	}
	want := TLSOptions{TLS: true, CAFile: "ca.pem", CertFile: "c.pem", KeyFile: "c.key", ServerName: "mx1"}
	if o != want {
		t.Errorf("%+v, want %+v", o, want)
	}
}

const testUsers = `alice@example.com:{PLAIN}secret:1000:1000::/home/alice::userdb_mail=maildir:~/Maildir
bob@example.com:{BLF-CRYPT}$2y$04$F60z4RlJeKO41ta4hq7SWetEQG9UHuMAQMh4XMw51ReqcjaSarSUC:1001:1001::/home/bob::
nl@example.com:{PLAIN}secret::::::nologin reason=Go_away
px@example.com:{PLAIN}secret::::::proxy host=10.0.0.5 port=143 nodelay
nd@example.com:{PLAIN}secret::::::nodelay
bad@example.com:{SSHA}!!notbase64!!
`

// newEngine serves body as a passwd-file passdb and userdb; with an empty
// body the file is missing, so every lookup could not tell.
func newEngine(t testing.TB, body string) *engine.Engine {
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
	eng, err := engine.New(engine.Settings{},
		[]engine.DBSpec{rules(engine.DBSpec{Driver: "passwd-file", Passdb: db})},
		[]engine.DBSpec{rules(engine.DBSpec{Driver: "passwd-file", Userdb: db})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// startAdminGRPC serves eng over gRPC on a unix socket where this
// process is admin, and returns its --grpc address.
func startAdminGRPC(t testing.TB, eng *engine.Engine) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "authd-cli-") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := "unix:" + filepath.Join(dir, "grpc")
	startGRPCWith(t, eng, config.GRPC{Listen: addr, AdminUIDs: []uint32{uint32(os.Getuid())}})
	return addr
}

// startGRPC serves eng over gRPC on a loopback port.
func startGRPC(t testing.TB, eng *engine.Engine) *grpcserver.Server {
	t.Helper()
	return startGRPCWith(t, eng, config.GRPC{Listen: "127.0.0.1:0"})
}

func startGRPCWith(t testing.TB, eng *engine.Engine, cfg config.GRPC) *grpcserver.Server {
	t.Helper()
	srv, err := grpcserver.New(cfg, grpcserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBackend(grpcserver.NewBackend(eng, nil, 0))
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
