package grpcserver

import (
	"context"
	"crypto/x509"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/config"
)

// Roles (docs/operations.md §5). Every caller the listener accepts may
// authenticate and look single users up: that is what the API is for.
// The admin role adds what reveals or changes more than one user's state
// (ListUsers, FlushCache, and any RPC added later unless it is listed in
// userMethods). The trusted role makes authd believe the addresses a
// caller puts in RequestInfo.
//
// A role is given to an identity the caller cannot choose: the CN or a
// subject alternative name of a client certificate that the TLS
// handshake verified against tls_client_ca_file, or the uid the kernel
// reports for a unix-socket peer. A plaintext TCP caller has neither,
// so it is never admin and never trusted: any local user can reach a
// loopback port.

// userMethods are the RPCs every caller may make. Health and reflection
// (when on) describe the server, not its users.
var userMethods = map[string]bool{
	authdv1.AuthService_Authenticate_FullMethodName: true,
	authdv1.AuthService_LookupPassdb_FullMethodName: true,
	authdv1.AuthService_LookupUser_FullMethodName:   true,
}

func needsAdmin(method string) bool {
	return !userMethods[method] && !strings.HasPrefix(method, "/grpc.health.v1.Health/") &&
		!strings.HasPrefix(method, "/grpc.reflection.")
}

// policy is the role configuration of one grpc { } section; Reload swaps
// it whole.
type policy struct {
	adminNames, trustedNames map[string]bool
	adminUIDs, trustedUIDs   map[uint32]bool
}

func newPolicy(cfg config.GRPC) *policy {
	p := &policy{adminNames: map[string]bool{}, trustedNames: map[string]bool{},
		adminUIDs: map[uint32]bool{}, trustedUIDs: map[uint32]bool{}}
	for _, n := range cfg.AdminClients {
		p.adminNames[n] = true
	}
	for _, n := range cfg.TrustedClients {
		p.trustedNames[n] = true
	}
	for _, u := range cfg.AdminUIDs {
		p.adminUIDs[u] = true
	}
	for _, u := range cfg.TrustedUIDs {
		p.trustedUIDs[u] = true
	}
	return p
}

// caller is what the server knows about who made a request.
type caller struct {
	admin, trusted bool
	// unix: the caller is on a unix socket (it has no IP address).
	unix bool
}

// identify finds the roles of the request's caller.
func (p *policy) identify(ctx context.Context) caller {
	var c caller
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return c
	}
	if u, ok := pr.Addr.(unixPeer); ok {
		c.unix = true
		if u.ok {
			c.admin, c.trusted = p.adminUIDs[u.uid], p.trustedUIDs[u.uid]
		}
	}
	if leaf := verifiedLeaf(pr.AuthInfo); leaf != nil {
		for _, n := range certNames(leaf) {
			c.admin = c.admin || p.adminNames[n]
			c.trusted = c.trusted || p.trustedNames[n]
		}
	}
	return c
}

// verifiedLeaf is the client certificate, if the handshake verified it
// against the client CA; nil otherwise (no mTLS, or no certificate).
func verifiedLeaf(ai credentials.AuthInfo) *x509.Certificate {
	ti, ok := ai.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return ti.State.VerifiedChains[0][0]
}

// certNames are the names a certificate is known by: its subject CN and
// every subject alternative name, compared exactly as written.
func certNames(c *x509.Certificate) []string {
	var names []string
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	names = append(names, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}

// errNotAdmin answers an admin RPC from a caller without the role.
var errNotAdmin = status.Error(codes.PermissionDenied,
	"this RPC needs the admin role: a client certificate named in admin_clients, or a unix-socket peer uid in admin_uids")

// authorize refuses an admin RPC to a caller without the role.
func (s *Server) authorize(ctx context.Context, method string) error {
	if !needsAdmin(method) || s.policy.Load().identify(ctx).admin {
		return nil
	}
	var who string
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		who = pr.Addr.String()
	}
	s.deniedLog.Log(s.log, slog.LevelWarn, "grpc admin RPC refused: the caller has no admin role", "method", method, "peer", who)
	return errNotAdmin
}

func (s *Server) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return h(srv, ss)
}
