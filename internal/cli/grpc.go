package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
)

// TLSOptions are the client's --tls-* flags. TLS is on when any of CAFile,
// CertFile or TLS is set; otherwise the connection is plaintext (fine for
// a loopback or unix: address).
type TLSOptions struct {
	// TLS turns TLS on with the system's root CAs (a server certificate
	// from a public CA).
	TLS bool
	// CAFile (--tls-ca) is the CA to verify the server with, instead of
	// the system roots.
	CAFile string
	// CertFile and KeyFile (--tls-cert, --tls-key) are the client
	// certificate for a server with tls_client_ca_file (mTLS).
	CertFile, KeyFile string
	// ServerName overrides the name the server certificate is checked
	// against (default: the host part of the address).
	ServerName string
}

// RegisterFlags adds --tls, --tls-ca, --tls-cert, --tls-key and
// --tls-server-name to fs, for the commands that take --grpc.
func (o *TLSOptions) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.TLS, "tls", false, "with --grpc: use TLS, trusting the system's CAs")
	fs.StringVar(&o.CAFile, "tls-ca", "", "with --grpc: verify the server with this CA `file` (turns TLS on)")
	fs.StringVar(&o.CertFile, "tls-cert", "", "with --grpc: client certificate `file` for mTLS (turns TLS on)")
	fs.StringVar(&o.KeyFile, "tls-key", "", "with --grpc: the client certificate's key `file`")
	fs.StringVar(&o.ServerName, "tls-server-name", "", "with --grpc: check the server certificate for this `name`")
}

func (o TLSOptions) enabled() bool { return o.TLS || o.CAFile != "" || o.CertFile != "" }

func (o TLSOptions) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-ca %s: no PEM certificate found", o.CAFile)
		}
		tc.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// grpcTransport asks authd's gRPC API.
type grpcTransport struct {
	conn *grpc.ClientConn
	api  authdv1.AuthServiceClient
}

// dialGRPC prepares a client for addr: "host:port", or "unix:/path" for a
// unix socket. Like grpc.NewClient it connects lazily: an unreachable
// server or a refused certificate shows up on the first call, with gRPC's
// precise reason, as UNAVAILABLE (exit 75), bounded by that call's
// context.
func dialGRPC(addr string, o TLSOptions) (*grpcTransport, error) {
	creds := insecure.NewCredentials()
	if o.enabled() {
		tc, err := o.config()
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tc)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("grpc %s: %w", addr, err)
	}
	return &grpcTransport{conn: conn, api: authdv1.NewAuthServiceClient(conn)}, nil
}

func (g *grpcTransport) Close() error { return g.conn.Close() }

// ParseParams turns `-x key=value` parameters into a RequestInfo. The keys
// are the AUTH/USER parameter names the socket commands take: service,
// lip, lport, rip, rport, secured, session.
func ParseParams(params []string) (*authdv1.RequestInfo, error) {
	ri := &authdv1.RequestInfo{}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		var err error
		switch k {
		case "service", "protocol":
			ri.Service = v
		case "lip":
			ri.LocalIp = v
		case "rip":
			ri.RemoteIp = v
		case "lport":
			ri.LocalPort, err = parsePort(p, v)
		case "rport":
			ri.RemotePort, err = parsePort(p, v)
		case "secured":
			ri.Secured = true
		case "session":
			ri.Session = v
		default:
			return nil, fmt.Errorf("%w: -x %s: unknown parameter for --grpc (known: service lip lport rip rport secured session)", errUsage, k)
		}
		if err != nil {
			return nil, err
		}
	}
	return ri, nil
}

func parsePort(param, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: -x %s: not a port number", errUsage, param)
	}
	return uint32(n), nil
}

// Auth calls Authenticate; the answer's fields are those the socket's OK
// or FAIL line would carry, the FAIL codes included.
func (g *grpcTransport) Auth(ctx context.Context, user, master string, password []byte, params []string) (AuthAnswer, error) {
	ri, err := ParseParams(params)
	if err != nil {
		return AuthAnswer{}, err
	}
	resp, err := g.api.Authenticate(ctx, &authdv1.AuthenticateRequest{User: user, Password: password, MasterUser: master, Info: ri})
	if err != nil {
		return AuthAnswer{}, rpcError(err)
	}
	ans := AuthAnswer{Result: AuthFailed, Fields: []string{"user=" + resp.GetUser()}}
	for _, f := range resp.GetFields() {
		ans.Fields = append(ans.Fields, fieldString(f))
	}
	if resp.GetMasterUser() != "" {
		ans.Fields = append(ans.Fields, "auth_user="+resp.GetMasterUser())
	}
	switch resp.GetResult() {
	case authdv1.AuthResult_AUTH_RESULT_OK:
		ans.Result = AuthOK
	case authdv1.AuthResult_AUTH_RESULT_USER_DISABLED:
		ans.Fields = append(ans.Fields, "code=user_disabled")
	case authdv1.AuthResult_AUTH_RESULT_PASSWORD_EXPIRED:
		ans.Fields = append(ans.Fields, "code=pass_expired")
	case authdv1.AuthResult_AUTH_RESULT_AUTHZ_FAILED:
		ans.Fields = append(ans.Fields, "code=authz_fail")
	}
	return ans, nil
}

// Lookup calls LookupUser or LookupPassdb.
func (g *grpcTransport) Lookup(ctx context.Context, kind LookupKind, user string, params []string) (LookupAnswer, error) {
	ri, err := ParseParams(params)
	if err != nil {
		return LookupAnswer{}, err
	}
	type reply interface {
		GetFound() bool
		GetUser() string
		GetFields() []*authdv1.Field
	}
	var resp reply
	if kind == PassLookup {
		resp, err = g.api.LookupPassdb(ctx, &authdv1.LookupPassdbRequest{User: user, Info: ri})
	} else {
		resp, err = g.api.LookupUser(ctx, &authdv1.LookupUserRequest{User: user, Info: ri})
	}
	if err != nil {
		return LookupAnswer{}, rpcError(err)
	}
	ans := LookupAnswer{Found: resp.GetFound(), User: resp.GetUser()}
	for _, f := range resp.GetFields() {
		ans.Fields = append(ans.Fields, [2]string{f.GetKey(), f.GetValue()})
	}
	return ans, nil
}

// List streams ListUsers. It is an admin RPC: a caller without the
// admin role (docs/operations.md §5) gets exit 77, not "try again later".
func (g *grpcTransport) List(ctx context.Context, mask string, _ []string, fn func(string)) error {
	st, err := g.api.ListUsers(ctx, &authdv1.ListUsersRequest{Mask: mask})
	if err != nil {
		return listError(err)
	}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return listError(err)
		}
		for _, u := range m.GetUsers() {
			fn(u)
		}
	}
}

func listError(err error) error {
	if status.Code(err) == codes.PermissionDenied {
		return fmt.Errorf("%w: %s", errNoPerm, status.Convert(err).Message())
	}
	return rpcError(err)
}

// rpcError describes a gRPC error with its status. A malformed request is
// a usage error; everything else is "try again later" (the server could
// not tell, or could not be reached; PERMISSION_DENIED, the master
// socket's FAIL, too).
func rpcError(err error) error {
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := fmt.Sprintf("%s (%s)", s.Message(), s.Code())
	if s.Code() == codes.InvalidArgument {
		return fmt.Errorf("%w: %s", errUsage, msg)
	}
	return errors.New(msg)
}

func fieldString(f *authdv1.Field) string {
	if f.GetValue() == "" {
		return f.GetKey()
	}
	return f.GetKey() + "=" + f.GetValue()
}
