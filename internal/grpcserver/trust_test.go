package grpcserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/limiter"
)

// netUsers are restricted by allow_nets.
const netUsers = `ten@example.com:{PLAIN}secret::::::allow_nets=10.0.0.0/8
lo@example.com:{PLAIN}secret::::::allow_nets=127.0.0.0/8
local@example.com:{PLAIN}secret::::::allow_nets=local
`

// callers are the four kinds of caller over one engine: plaintext TCP and
// unix socket without roles, mTLS and unix socket with the trusted role.
type callers struct {
	plain, unix, trustedTLS, trustedUnix authdv1.AuthServiceClient
}

func startCallers(t *testing.T, eng grpcserver.Engine) callers {
	t.Helper()
	var c callers
	b := func() *grpcserver.Backend { return grpcserver.NewBackend(eng, nil, 0) }
	c.plain = dial(t, startGRPC(t, config.GRPC{}, b(), grpcserver.Options{}), nil)
	_, c.unix = startUnix(t, config.GRPC{}, b(), grpcserver.Options{})
	_, c.trustedUnix = startUnix(t, config.GRPC{TrustedUIDs: myUID()}, b(), grpcserver.Options{})
	files := newTLSFiles(t)
	srv := startGRPC(t, config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey, TLSClientCAFile: files.ca.CertFile,
		TrustedClients: []string{"webmail.example.com"}}, b(), grpcserver.Options{})
	c.trustedTLS = dial(t, srv, files.clientTLS(t, true))
	return c
}

func authResult(t *testing.T, c authdv1.AuthServiceClient, user, pass, rip string) authdv1.AuthResult {
	t.Helper()
	resp, err := c.Authenticate(context.Background(), &authdv1.AuthenticateRequest{User: user, Password: []byte(pass),
		Info: &authdv1.RequestInfo{RemoteIp: rip}})
	if err != nil {
		t.Fatalf("%s from %q: %v", user, rip, err)
	}
	return resp.GetResult()
}

// TestAllowNetsTrust: allow_nets sees the remote_ip a trusted caller
// sends, and the connection's own address for anyone else; a request
// without an address never passes allow_nets = local.
func TestAllowNetsTrust(t *testing.T) {
	c := startCallers(t, newEngine(t, netUsers))
	const ok, failed = authdv1.AuthResult_AUTH_RESULT_OK, authdv1.AuthResult_AUTH_RESULT_FAILED
	for _, tc := range []struct {
		name   string
		client authdv1.AuthServiceClient
		user   string
		rip    string
		want   authdv1.AuthResult
	}{
		// Untrusted over loopback TCP: the peer is 127.0.0.1.
		{"plain claims 10/8", c.plain, "ten@example.com", "10.0.0.1", failed},
		{"plain is loopback", c.plain, "lo@example.com", "10.0.0.1", ok},
		{"plain is not local", c.plain, "local@example.com", "", failed},
		// Untrusted over a unix socket: no address at all.
		{"unix claims 10/8", c.unix, "ten@example.com", "10.0.0.1", failed},
		{"unix claims loopback", c.unix, "lo@example.com", "127.0.0.1", failed},
		{"unix is not local", c.unix, "local@example.com", "", failed},
		// Trusted: the end user's address is the one sent.
		{"mTLS 10/8", c.trustedTLS, "ten@example.com", "10.0.0.1", ok},
		{"mTLS elsewhere", c.trustedTLS, "lo@example.com", "10.0.0.1", failed},
		{"mTLS without rip is its own address", c.trustedTLS, "lo@example.com", "", ok},
		{"mTLS without rip is not local", c.trustedTLS, "local@example.com", "", failed},
		{"unix 10/8", c.trustedUnix, "ten@example.com", "10.0.0.1", ok},
		{"unix without rip is not local", c.trustedUnix, "local@example.com", "", failed},
	} {
		if got := authResult(t, tc.client, tc.user, "secret", tc.rip); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// keysOf lists the brute-force defence's keys of one kind that have
// failures.
func keysOf(l *limiter.Limiter, kind limiter.Kind) []string {
	var out []string
	for _, k := range l.List(0) {
		if k.Kind == kind {
			out = append(out, k.Key)
		}
	}
	slices.Sort(out)
	return out
}

// TestBruteForceKeyTrust: a failure counts against the address a trusted
// caller names, and against the connection's own address otherwise, so
// a caller cannot escape the defence by inventing addresses; a unix
// socket's untrusted failures count for the account only.
func TestBruteForceKeyTrust(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pick    func(callers) authdv1.AuthServiceClient
		wantIPs []string
	}{
		{"plaintext TCP", func(c callers) authdv1.AuthServiceClient { return c.plain }, []string{"127.0.0.1"}},
		{"untrusted unix", func(c callers) authdv1.AuthServiceClient { return c.unix }, nil},
		{"trusted mTLS", func(c callers) authdv1.AuthServiceClient { return c.trustedTLS }, []string{"10.0.0.1", "10.0.0.2"}},
		{"trusted unix", func(c callers) authdv1.AuthServiceClient { return c.trustedUnix }, []string{"10.0.0.1", "10.0.0.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := newEngineSet(t, testUsers, engine.Settings{})
			lim := limiter.New(limiter.Config{})
			eng.SetLimiter(lim)
			c := tc.pick(startCallers(t, eng))
			for _, rip := range []string{"10.0.0.1", "10.0.0.2"} {
				// A different wrong password each time: the defence
				// counts a repeated one only once.
				if got := authResult(t, c, "alice@example.com", "wrong-"+rip, rip); got != authdv1.AuthResult_AUTH_RESULT_FAILED {
					t.Fatalf("wrong password: %v", got)
				}
			}
			if got := keysOf(lim, limiter.KindIP); !slices.Equal(got, tc.wantIPs) {
				t.Errorf("address keys %q, want %q", got, tc.wantIPs)
			}
			if got := keysOf(lim, limiter.KindAccount); len(got) != 1 || !strings.Contains(got[0], "alice@example.com") {
				t.Errorf("account keys %q", got)
			}
		})
	}
}
