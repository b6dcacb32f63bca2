package grpcserver_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/cli"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/grpcserver"
	"github.com/authd-project/authd/internal/testenv"
)

func authOK(t *testing.T, c authdv1.AuthServiceClient) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("secret")})
	if err == nil && resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_OK {
		t.Fatalf("alice: %v", resp.GetResult())
	}
	return err
}

func TestTLS(t *testing.T) {
	files := newTLSFiles(t)
	eng := newEngine(t, testUsers)
	srv := startGRPC(t, config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey},
		grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})

	if err := authOK(t, dial(t, srv, files.clientTLS(t, false))); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	// A plaintext client cannot talk to a TLS listener.
	if err := authOK(t, dial(t, srv, nil)); status.Code(err) != codes.Unavailable {
		t.Errorf("plaintext client on a TLS listener: %v, want UNAVAILABLE", err)
	}
	// A client that does not trust the server's CA refuses it.
	other := testenv.NewCA(t)
	if err := authOK(t, dial(t, srv, other.ClientConfig("127.0.0.1"))); status.Code(err) != codes.Unavailable {
		t.Errorf("client trusting another CA: %v, want UNAVAILABLE", err)
	}
}

func TestMutualTLS(t *testing.T) {
	files := newTLSFiles(t)
	eng := newEngine(t, testUsers)
	srv := startGRPC(t, config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey, TLSClientCAFile: files.ca.CertFile},
		grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})

	if err := authOK(t, dial(t, srv, files.clientTLS(t, true))); err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	// tls_client_ca_file makes a client certificate mandatory.
	if err := authOK(t, dial(t, srv, files.clientTLS(t, false))); status.Code(err) != codes.Unavailable {
		t.Errorf("client without a certificate: %v, want UNAVAILABLE", err)
	}
	// A certificate from another CA is refused too.
	other := testenv.NewCA(t)
	dir := t.TempDir()
	cert, key := other.Issue(t, dir, "intruder", "intruder.example.com")
	tc := files.clientTLS(t, false)
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = []tls.Certificate{c}
	if err := authOK(t, dial(t, srv, tc)); status.Code(err) != codes.Unavailable {
		t.Errorf("client certificate from another CA: %v, want UNAVAILABLE", err)
	}
	// The command-line client's TLS options work the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		o    cli.TLSOptions
		want int
	}{
		{"with certificate", cli.TLSOptions{CAFile: files.ca.CertFile, CertFile: files.clientCert, KeyFile: files.clientKey}, cli.ExitOK},
		{"without certificate", cli.TLSOptions{CAFile: files.ca.CertFile}, cli.ExitTempFail},
	} {
		var out, errOut strings.Builder
		target := cli.Target{GRPC: srv.Addr().String(), TLS: tc.o}
		if got := cli.Test(ctx, target, "alice@example.com", "", []byte("secret"), nil, &out, &errOut); got != tc.want {
			t.Errorf("%s: exit %d, want %d\n%s%s", tc.name, got, tc.want, out.String(), errOut.String())
		}
	}
}

// TestReloadTLS: a reload re-reads the certificate files, so renewed
// certificates take effect without a restart, and refuses changes that
// need a new listener.
func TestReloadTLS(t *testing.T) {
	files := newTLSFiles(t)
	eng := newEngine(t, testUsers)
	// Reload compares the configured address, not the bound one.
	cfg := config.GRPC{Listen: "127.0.0.1:0", TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey}
	srv := startGRPC(t, cfg, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})

	// The certificate is replaced by one from a new CA, in place.
	ca2 := testenv.NewCA(t)
	dir := t.TempDir()
	cert2, key2 := ca2.Issue(t, dir, "server2", "127.0.0.1")
	for src, dst := range map[string]string{cert2: files.serverCert, key2: files.serverKey} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := authOK(t, dial(t, srv, ca2.ClientConfig("127.0.0.1"))); err == nil {
		t.Fatal("the new certificate is served before the reload")
	}
	if err := srv.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if err := authOK(t, dial(t, srv, ca2.ClientConfig("127.0.0.1"))); err != nil {
		t.Errorf("after reload, client trusting the new CA: %v", err)
	}
	if err := authOK(t, dial(t, srv, files.clientTLS(t, false))); err == nil {
		t.Error("after reload, the old certificate is still served")
	}

	// Turning on mTLS needs no restart either.
	withCA := cfg
	withCA.TLSClientCAFile = ca2.CertFile
	if err := srv.Reload(withCA); err != nil {
		t.Fatalf("Reload with a client CA: %v", err)
	}
	if err := authOK(t, dial(t, srv, ca2.ClientConfig("127.0.0.1"))); status.Code(err) != codes.Unavailable {
		t.Errorf("after enabling mTLS, client without certificate: %v", err)
	}

	// A broken file keeps the running TLS state.
	broken := cfg
	broken.TLSKeyFile = filepath.Join(dir, "missing.key")
	if err := srv.Reload(broken); err == nil {
		t.Error("Reload with a missing key file succeeded")
	}
	// Changing what the listener is needs a restart.
	for _, c := range []config.GRPC{
		{Listen: "127.0.0.1:1", TLSCertFile: cfg.TLSCertFile, TLSKeyFile: cfg.TLSKeyFile},
		{Listen: cfg.Listen},
	} {
		if err := srv.Reload(c); !errors.Is(err, grpcserver.ErrRestartRequired) {
			t.Errorf("Reload(%+v) = %v, want ErrRestartRequired", c, err)
		}
	}
}

func TestPlaintextOnlyOnLoopback(t *testing.T) {
	eng := newEngine(t, testUsers)
	b := grpcserver.NewBackend(eng, nil, 0)
	srv, err := grpcserver.New(config.GRPC{Listen: "0.0.0.0:0"}, grpcserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetBackend(b)
	if err := srv.Start(); err == nil || !strings.Contains(err.Error(), "allow_plaintext_remote") {
		t.Errorf("plaintext on 0.0.0.0: Start() = %v, want a refusal", err)
	}
	srv.Shutdown(context.Background())

	// With allow_plaintext_remote it starts, with a warning.
	var log syncBuffer
	srv = startGRPC(t, config.GRPC{Listen: "0.0.0.0:0", AllowPlaintextRemote: true}, b, grpcserver.Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	if !strings.Contains(log.String(), "WITHOUT TLS") {
		t.Errorf("no warning logged: %s", log.String())
	}
	if srv.Addr() == nil {
		t.Fatal("no address")
	}
}

func TestUnixSocket(t *testing.T) {
	eng := newEngine(t, testUsers)
	dir, err := os.MkdirTemp("", "authd-grpc-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "grpc")
	srv := startGRPC(t, config.GRPC{Listen: "unix:" + path}, grpcserver.NewBackend(eng, nil, 0), grpcserver.Options{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	_ = srv
	if err := authOK(t, authdv1.NewAuthServiceClient(dialConn(t, "unix:"+path, nil))); err != nil {
		t.Fatal(err)
	}
}
