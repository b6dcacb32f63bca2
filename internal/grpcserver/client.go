package grpcserver

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

// Exit codes of `authd test`, `authd user` and `authd lookup`, doveadm's
// (protocol.md §3.2, §6.2), the same over gRPC as over the sockets.
const (
	ExitOK       = 0
	ExitUsage    = 64 // EX_USAGE: a bad -x parameter
	ExitNoUser   = 67 // EX_NOUSER: the user does not exist
	ExitTempFail = 75 // EX_TEMPFAIL: could not tell (backend down, server unreachable)
	ExitNoPerm   = 77 // EX_NOPERM: authentication failed
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

// Client is a connection to authd's gRPC API.
type Client struct {
	conn *grpc.ClientConn
	api  authdv1.AuthServiceClient
}

// DialClient prepares a client for addr: "host:port", or "unix:/path" for
// a unix socket. It takes no context because, like grpc.NewClient, it
// connects lazily: an unreachable server or a refused certificate shows up
// on the first call, with gRPC's precise reason, as UNAVAILABLE (exit 75),
// bounded by that call's context.
func DialClient(addr string, o TLSOptions) (*Client, error) {
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
	return &Client{conn: conn, api: authdv1.NewAuthServiceClient(conn)}, nil
}

// API is the generated client, for callers that need more than the
// command helpers.
func (c *Client) API() authdv1.AuthServiceClient { return c.api }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// ParseParams turns `-x key=value` parameters into a RequestInfo. The keys
// are the AUTH/USER parameter names the socket commands take: service,
// lip, lport, rip, rport, secured, session.
func ParseParams(params []string) (*authdv1.RequestInfo, error) {
	ri := &authdv1.RequestInfo{}
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		port := func() (uint32, error) {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return 0, fmt.Errorf("-x %s: not a port number", p)
			}
			return uint32(n), nil
		}
		var err error
		switch k {
		case "service", "protocol":
			ri.Service = v
		case "lip":
			ri.LocalIp = v
		case "rip":
			ri.RemoteIp = v
		case "lport":
			ri.LocalPort, err = port()
		case "rport":
			ri.RemotePort, err = port()
		case "secured":
			ri.Secured = true
		case "session":
			ri.Session = v
		default:
			return nil, fmt.Errorf("-x %s: unknown parameter for --grpc (known: service lip lport rip rport secured session)", k)
		}
		if err != nil {
			return nil, err
		}
	}
	return ri, nil
}

// Test authenticates user with password like `authd test` does on a
// client socket, printing the same lines, and returns the exit code.
// With master, the master user logs in as user. params are `-x` values.
func (c *Client) Test(ctx context.Context, stdout, stderr io.Writer, user, master string, password []byte, params []string) int {
	ri, err := ParseParams(params)
	if err != nil {
		fmt.Fprintln(stderr, "authd test:", err)
		return ExitUsage
	}
	resp, err := c.api.Authenticate(ctx, &authdv1.AuthenticateRequest{User: user, Password: password, MasterUser: master, Info: ri})
	if err != nil {
		fmt.Fprintf(stdout, "passdb: %s auth failed\n", user)
		fmt.Fprintf(stderr, "authd test: %s\n", describe(err))
		return exitFor(err)
	}
	extra := []string{"user=" + resp.GetUser()}
	for _, f := range resp.GetFields() {
		extra = append(extra, fieldString(f))
	}
	if resp.GetMasterUser() != "" {
		extra = append(extra, "auth_user="+resp.GetMasterUser())
	}
	if resp.GetResult() == authdv1.AuthResult_AUTH_RESULT_OK {
		fmt.Fprintf(stdout, "passdb: %s auth succeeded\n", user)
		printExtra(stdout, extra)
		return ExitOK
	}
	// The socket's FAIL codes, so scripts see the same words.
	switch resp.GetResult() {
	case authdv1.AuthResult_AUTH_RESULT_USER_DISABLED:
		extra = append(extra, "code=user_disabled")
	case authdv1.AuthResult_AUTH_RESULT_PASSWORD_EXPIRED:
		extra = append(extra, "code=pass_expired")
	case authdv1.AuthResult_AUTH_RESULT_AUTHZ_FAILED:
		extra = append(extra, "code=authz_fail")
	}
	fmt.Fprintf(stdout, "passdb: %s auth failed\n", user)
	printExtra(stdout, extra)
	return ExitNoPerm
}

// User looks user up in the userdb like `authd user` (USER), or lists
// users when user contains * or ? (LIST), printing the same lines.
func (c *Client) User(ctx context.Context, stdout, stderr io.Writer, user string, params []string) int {
	ri, err := ParseParams(params)
	if err != nil {
		fmt.Fprintln(stderr, "authd user:", err)
		return ExitUsage
	}
	if strings.ContainsAny(user, "*?") {
		return c.list(ctx, stdout, stderr, user)
	}
	resp, err := c.api.LookupUser(ctx, &authdv1.LookupUserRequest{User: user, Info: ri})
	if err != nil {
		fmt.Fprintf(stderr, "userdb lookup failed for %s: %s\n", user, describe(err))
		return exitFor(err)
	}
	if !resp.GetFound() {
		fmt.Fprintf(stderr, "user %s doesn't exist\n", user)
		return ExitNoUser
	}
	printFields(stdout, resp.GetUser(), resp.GetFields())
	return ExitOK
}

func (c *Client) list(ctx context.Context, stdout, stderr io.Writer, mask string) int {
	st, err := c.api.ListUsers(ctx, &authdv1.ListUsersRequest{Mask: mask})
	if err != nil {
		fmt.Fprintf(stderr, "authd user: listing users failed: %s\n", describe(err))
		return exitFor(err)
	}
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return ExitOK
		}
		if err != nil {
			fmt.Fprintf(stderr, "authd user: listing users failed: %s\n", describe(err))
			return exitFor(err)
		}
		for _, u := range m.GetUsers() {
			fmt.Fprintln(stdout, u)
		}
	}
}

// Lookup looks user up in the passdb like `authd lookup` (PASS).
func (c *Client) Lookup(ctx context.Context, stdout, stderr io.Writer, user string, params []string) int {
	ri, err := ParseParams(params)
	if err != nil {
		fmt.Fprintln(stderr, "authd lookup:", err)
		return ExitUsage
	}
	resp, err := c.api.LookupPassdb(ctx, &authdv1.LookupPassdbRequest{User: user, Info: ri})
	if err != nil {
		fmt.Fprintf(stderr, "passdb lookup failed for %s: %s\n", user, describe(err))
		return exitFor(err)
	}
	if !resp.GetFound() {
		fmt.Fprintf(stderr, "user %s doesn't exist\n", user)
		return ExitNoUser
	}
	printFields(stdout, resp.GetUser(), resp.GetFields())
	return ExitOK
}

// exitFor maps a gRPC error to an exit code. Everything but a malformed
// request is "try again later": the server could not tell, or could not
// be reached.
func exitFor(err error) int {
	// PERMISSION_DENIED (the master socket's FAIL) is 75 too, as
	// `authd lookup` reports FAIL on the socket.
	if status.Code(err) == codes.InvalidArgument {
		return ExitUsage
	}
	return ExitTempFail
}

func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s (%s)", s.Message(), s.Code())
	}
	return err.Error()
}

func fieldString(f *authdv1.Field) string {
	if f.GetValue() == "" {
		return f.GetKey()
	}
	return f.GetKey() + "=" + f.GetValue()
}

func printExtra(w io.Writer, fs []string) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintln(w, "extra fields:")
	for _, f := range fs {
		fmt.Fprintf(w, "  %s\n", f)
	}
}

// printFields prints the `field<TAB>value` table of `authd user`.
func printFields(w io.Writer, user string, fs []*authdv1.Field) {
	fmt.Fprintf(w, "field\tvalue\nuser\t%s\n", user)
	for _, f := range fs {
		fmt.Fprintf(w, "%s\t%s\n", f.GetKey(), f.GetValue())
	}
}
