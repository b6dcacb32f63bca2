package grpcserver_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/grpcserver"
)

// adminCalls makes both admin RPCs and returns their status codes
// (ListUsers's is the stream's first Recv).
func adminCalls(t *testing.T, c authdv1.AuthServiceClient) (list, flush codes.Code) {
	t.Helper()
	ctx := context.Background()
	st, err := c.ListUsers(ctx, &authdv1.ListUsersRequest{Mask: "*"})
	if err == nil {
		for err == nil {
			_, err = st.Recv()
		}
		if err == io.EOF {
			err = nil
		}
	}
	_, ferr := c.FlushCache(ctx, &authdv1.FlushCacheRequest{})
	return status.Code(err), status.Code(ferr)
}

// userCalls makes the RPCs every caller may make; each must succeed.
func userCalls(t *testing.T, c authdv1.AuthServiceClient) {
	t.Helper()
	ctx := context.Background()
	if resp, err := c.Authenticate(ctx, &authdv1.AuthenticateRequest{User: "alice@example.com", Password: []byte("secret")}); err != nil || resp.GetResult() != authdv1.AuthResult_AUTH_RESULT_OK {
		t.Errorf("Authenticate: %v %v", resp.GetResult(), err)
	}
	if resp, err := c.LookupUser(ctx, &authdv1.LookupUserRequest{User: "alice@example.com"}); err != nil || !resp.GetFound() {
		t.Errorf("LookupUser: %v %v", resp, err)
	}
	if resp, err := c.LookupPassdb(ctx, &authdv1.LookupPassdbRequest{User: "alice@example.com"}); err != nil || !resp.GetFound() {
		t.Errorf("LookupPassdb: %v %v", resp, err)
	}
}

func listEngine(t *testing.T) *engine.Engine { return newEngine(t, testUsers) }

// TestPlaintextCallerIsNoAdmin: on a loopback port any local user can
// connect, so a plaintext TCP caller may authenticate and look users up,
// but not list them or flush the cache, whatever admin_uids says.
func TestPlaintextCallerIsNoAdmin(t *testing.T) {
	var log syncBuffer
	srv := startGRPC(t, config.GRPC{AdminUIDs: append(myUID(), 0)}, grpcserver.NewBackend(listEngine(t), nil, 0),
		grpcserver.Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	c := dial(t, srv, nil)
	userCalls(t, c)
	if list, flush := adminCalls(t, c); list != codes.PermissionDenied || flush != codes.PermissionDenied {
		t.Errorf("ListUsers %v, FlushCache %v; want PERMISSION_DENIED", list, flush)
	}
	if !strings.Contains(log.String(), "grpc admin RPC refused") || !strings.Contains(log.String(), "ListUsers") {
		t.Errorf("refusal not logged: %s", log.String())
	}
}

// TestAdminByClientCertificate: an mTLS client is admin when its
// verified certificate's CN or a subject alternative name is listed.
func TestAdminByClientCertificate(t *testing.T) {
	files := newTLSFiles(t)
	// CN cn.example.com, DNS names cn.example.com and san.example.com.
	cert, key := files.ca.Issue(t, t.TempDir(), "both", "cn.example.com", "san.example.com")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	both := files.clientTLS(t, false)
	both.Certificates = []tls.Certificate{pair}
	for _, tc := range []struct {
		name   string
		admins []string
		client *tls.Config
		want   codes.Code
	}{
		{"by CN", []string{"webmail.example.com"}, files.clientTLS(t, true), codes.OK},
		{"by SAN", []string{"other", "san.example.com"}, both, codes.OK},
		{"not listed", []string{"ops.example.com"}, files.clientTLS(t, true), codes.PermissionDenied},
		{"no list", nil, both, codes.PermissionDenied},
		{"case matters", []string{"WEBMAIL.example.com"}, files.clientTLS(t, true), codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startGRPC(t, config.GRPC{TLSCertFile: files.serverCert, TLSKeyFile: files.serverKey, TLSClientCAFile: files.ca.CertFile,
				AdminClients: tc.admins}, grpcserver.NewBackend(listEngine(t), nil, 0), grpcserver.Options{})
			c := dial(t, srv, tc.client)
			userCalls(t, c)
			if list, flush := adminCalls(t, c); list != tc.want || flush != tc.want {
				t.Errorf("ListUsers %v, FlushCache %v; want %v", list, flush, tc.want)
			}
		})
	}
}

// TestAdminByUnixUID: on a unix socket the peer's uid (SO_PEERCRED)
// decides; root is admin by default.
func TestAdminByUnixUID(t *testing.T) {
	me := uint32(os.Getuid())
	rootByDefault := codes.PermissionDenied
	if me == 0 {
		rootByDefault = codes.OK
	}
	for _, tc := range []struct {
		name string
		uids []uint32
		want codes.Code
	}{
		{"listed", []uint32{me + 1, me}, codes.OK},
		{"not listed", []uint32{me + 1}, codes.PermissionDenied},
		{"empty list", nil, codes.PermissionDenied},
		{"default (root only)", config.DefaultGRPC().AdminUIDs, rootByDefault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, c := startUnix(t, config.GRPC{AdminUIDs: tc.uids}, grpcserver.NewBackend(listEngine(t), nil, 0), grpcserver.Options{})
			userCalls(t, c)
			if list, flush := adminCalls(t, c); list != tc.want || flush != tc.want {
				t.Errorf("ListUsers %v, FlushCache %v; want %v", list, flush, tc.want)
			}
		})
	}
}

// TestReloadChangesRoles: roles apply to the next request after a
// reload, on the same listener.
func TestReloadChangesRoles(t *testing.T) {
	cfg := config.GRPC{}
	srv, c := startUnix(t, cfg, grpcserver.NewBackend(listEngine(t), nil, 0), grpcserver.Options{})
	if list, _ := adminCalls(t, c); list != codes.PermissionDenied {
		t.Fatalf("before: %v", list)
	}
	cfg = srv.Config()
	cfg.AdminUIDs = myUID()
	if err := srv.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if list, flush := adminCalls(t, c); list != codes.OK || flush != codes.OK {
		t.Errorf("after the reload: ListUsers %v, FlushCache %v", list, flush)
	}
	cfg.MaxStreams = 7
	if err := srv.Reload(cfg); !errors.Is(err, grpcserver.ErrRestartRequired) {
		t.Errorf("a new max_streams: %v, want ErrRestartRequired", err)
	}
}
