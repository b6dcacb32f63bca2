package grpcserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/fields"
)

// service implements authdv1.AuthServiceServer.
type service struct {
	authdv1.UnimplementedAuthServiceServer
	s *Server
}

// ListUsers batch bounds: a batch goes out when either is reached, so a
// huge userdb streams in steady chunks and no message nears the client's
// 4 MiB default receive limit.
const (
	listBatchUsers = 256
	listBatchBytes = 64 << 10
)

// checkAuthRequest refuses malformed names and passwords before any work.
func checkAuthRequest(req *authdv1.AuthenticateRequest) error {
	if err := checkName("user", req.GetUser()); err != nil {
		return err
	}
	if req.GetMasterUser() != "" {
		if err := checkName("master_user", req.GetMasterUser()); err != nil {
			return err
		}
	}
	// PLAIN cannot carry a NUL in the password (RFC 4616 §2), so neither
	// can this.
	if pass := req.GetPassword(); len(pass) > maxPassLen || bytes.IndexByte(pass, 0) >= 0 {
		return status.Error(codes.InvalidArgument, "password: longer than 12 KiB or contains NUL")
	}
	return nil
}

// authenticate runs the passdb step and, when asked, the userdb step.
func (b *Backend) authenticate(ctx context.Context, info *engine.Info, req *authdv1.AuthenticateRequest) (engine.Result, *engine.Result) {
	// As doveadm auth test: authzid = authcid = user, or with a master
	// user, the master authenticates (authcid) as the login user
	// (authzid).
	authzid, authcid := req.GetUser(), req.GetUser()
	if m := req.GetMasterUser(); m != "" {
		authcid = m
	}
	res := b.eng.VerifyPlain(ctx, info, authzid, authcid, req.GetPassword())
	if res.Status != engine.StatusOK || !req.GetLookupUserdb() || res.Fields.Has("nologin") || res.Fields.Has("proxy") {
		// Dovecot's login does the userdb step with the master socket's
		// REQUEST, and not for nologin or proxy logins, which end at the
		// login process.
		return res, nil
	}
	u := b.eng.LookupUserFinal(ctx, info, res.User, res.OrigUser, res.Userdb)
	return res, &u
}

// finalResult is the request's outcome: the passdb's, unless the userdb
// step failed after it.
func finalResult(res engine.Result, userdb *engine.Result) engine.Result {
	if userdb == nil || userdb.Status == engine.StatusOK {
		return res
	}
	out := res
	out.Status, out.NoDelay = engine.StatusFail, false
	switch {
	case userdb.Status == engine.StatusTempFail:
		out.Status = engine.StatusTempFail
		out.Reason = userdb.Reason
	case userdb.Reason != "":
		out.Reason = userdb.Reason
	default:
		out.Reason = "user not found in userdb"
	}
	return out
}

// authResponse builds the answer to a request that did not fail
// temporarily.
func authResponse(res engine.Result, userdb *engine.Result, st engine.Status) *authdv1.AuthenticateResponse {
	resp := &authdv1.AuthenticateResponse{
		Result:     authResult(st),
		User:       utf8Safe(res.User),
		Fields:     protoFields(res.Fields),
		MasterUser: utf8Safe(res.MasterUser),
	}
	if r, ok := res.Fields.Get("reason"); ok {
		resp.Reason = utf8Safe(r)
	}
	switch {
	case userdb != nil && st == engine.StatusOK:
		resp.UserdbFields = protoFields(userdb.Userdb)
		if userdb.User != "" {
			resp.User = utf8Safe(userdb.User)
		}
	case userdb != nil:
		// The password was right but the userdb does not know the user:
		// answer exactly like a wrong password, without the passdb's
		// fields, so that the difference tells a guesser nothing.
		resp.Fields, resp.Reason = nil, ""
	}
	return resp
}

func authResult(st engine.Status) authdv1.AuthResult {
	switch st {
	case engine.StatusOK:
		return authdv1.AuthResult_AUTH_RESULT_OK
	case engine.StatusUserDisabled:
		return authdv1.AuthResult_AUTH_RESULT_USER_DISABLED
	case engine.StatusPassExpired:
		return authdv1.AuthResult_AUTH_RESULT_PASSWORD_EXPIRED
	case engine.StatusAuthzFail:
		return authdv1.AuthResult_AUTH_RESULT_AUTHZ_FAILED
	}
	// Fail, and NotFound should a passdb chain ever produce it here.
	return authdv1.AuthResult_AUTH_RESULT_FAILED
}

// tempFailMessage is the UNAVAILABLE text: fixed, plus a reason field the
// passdb meant for clients. The engine's internal reason stays in the log.
func tempFailMessage(fs fields.Fields) string {
	if r, ok := fs.Get("reason"); ok && r != "" {
		return "temporary authentication failure: " + utf8Safe(r)
	}
	return "temporary authentication failure"
}

func (v *service) LookupPassdb(ctx context.Context, req *authdv1.LookupPassdbRequest) (*authdv1.LookupPassdbResponse, error) {
	start := time.Now()
	if err := checkName("user", req.GetUser()); err != nil {
		return nil, err
	}
	info, err := v.s.requestInfo(ctx, req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, v.s.requestTimeout())
	defer cancel()
	var res engine.Result
	if err := v.s.withBackend(func(b *Backend) { res = b.eng.LookupPassdb(rctx, info, req.GetUser()) }); err != nil {
		return nil, err
	}
	v.observeLookup("pass", res.Status, start)
	// As the master socket's PASS (internal/dovecot master.go).
	switch res.Status {
	case engine.StatusOK:
		return &authdv1.LookupPassdbResponse{Found: true, User: utf8Safe(res.User), Fields: protoFields(res.Fields)}, nil
	case engine.StatusNotFound, engine.StatusUserDisabled, engine.StatusPassExpired:
		return &authdv1.LookupPassdbResponse{}, nil
	case engine.StatusTempFail:
		if rctx.Err() != nil {
			return nil, status.FromContextError(rctx.Err()).Err()
		}
		return nil, status.Error(codes.Unavailable, lookupFailMessage("passdb", res.Fields))
	}
	return nil, status.Error(codes.PermissionDenied, "the passdb refused the lookup")
}

func lookupFailMessage(db string, fs fields.Fields) string {
	if r, ok := fs.Get("reason"); ok && r != "" {
		return db + " lookup failed: " + utf8Safe(r)
	}
	return db + " lookup failed"
}

func (v *service) LookupUser(ctx context.Context, req *authdv1.LookupUserRequest) (*authdv1.LookupUserResponse, error) {
	start := time.Now()
	if err := checkName("user", req.GetUser()); err != nil {
		return nil, err
	}
	info, err := v.s.requestInfo(ctx, req.GetInfo(), "")
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, v.s.requestTimeout())
	defer cancel()
	var res engine.Result
	if err := v.s.withBackend(func(b *Backend) { res = b.eng.LookupUser(rctx, info, req.GetUser(), nil) }); err != nil {
		return nil, err
	}
	v.observeLookup("user", res.Status, start)
	// As the master socket's USER.
	switch res.Status {
	case engine.StatusOK:
		return &authdv1.LookupUserResponse{Found: true, User: utf8Safe(res.User), Fields: protoFields(res.Userdb)}, nil
	case engine.StatusNotFound:
		return &authdv1.LookupUserResponse{}, nil
	}
	if rctx.Err() != nil {
		return nil, status.FromContextError(rctx.Err()).Err()
	}
	return nil, status.Error(codes.Unavailable, lookupFailMessage("userdb", res.Userdb))
}

func (v *service) ListUsers(req *authdv1.ListUsersRequest, stream grpc.ServerStreamingServer[authdv1.ListUsersResponse]) error {
	start := time.Now()
	if len(req.GetMask()) > maxNameLen {
		return status.Error(codes.InvalidArgument, "mask: longer than 1024 bytes")
	}
	b, err := v.s.acquire()
	if err != nil {
		return err
	}
	defer b.release()
	ctx, cancel := context.WithTimeout(stream.Context(), max(listTimeout, v.s.requestTimeout()))
	defer cancel()
	var batch []string
	size := 0
	var sendErr error
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		if err := stream.Send(&authdv1.ListUsersResponse{Users: batch}); err != nil {
			sendErr = err
			return false
		}
		batch, size = nil, 0
		return true
	}
	err = b.eng.ListUsers(ctx, req.GetMask(), func(u string) bool {
		batch = append(batch, utf8Safe(u))
		size += len(u) + 2
		if len(batch) >= listBatchUsers || size >= listBatchBytes {
			return flush()
		}
		return true
	})
	if err == nil && sendErr == nil {
		flush()
	}
	switch {
	case sendErr != nil:
		v.observeLookup("list", engine.StatusTempFail, start)
		return sendErr
	case errors.Is(err, engine.ErrNoIterate):
		v.observeLookup("list", engine.StatusFail, start)
		return status.Error(codes.FailedPrecondition, "no userdb supports listing users")
	case err != nil:
		v.observeLookup("list", engine.StatusTempFail, start)
		v.s.log.Error("user listing failed", "proto", "grpc", "err", err)
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Error(codes.Unavailable, "user listing failed")
	}
	v.observeLookup("list", engine.StatusOK, start)
	return nil
}

func (v *service) FlushCache(ctx context.Context, req *authdv1.FlushCacheRequest) (*authdv1.FlushCacheResponse, error) {
	start := time.Now()
	for _, u := range req.GetUsers() {
		if err := checkName("users", u); err != nil {
			return nil, err
		}
	}
	b, err := v.s.acquire()
	if err != nil {
		return nil, err
	}
	defer b.release()
	n := 0
	if b.cache != nil {
		n = b.cache.Flush(req.GetUsers())
	}
	v.observeLookup("cache_flush", engine.StatusOK, start)
	v.s.log.Info("cache flushed", "proto", "grpc", "users", len(req.GetUsers()), "removed", n)
	return &authdv1.FlushCacheResponse{Removed: uint64(n)}, nil
}

func (v *service) observeLookup(cmd string, st engine.Status, start time.Time) {
	if obs := v.s.opts.Observer; obs != nil {
		obs.LookupRequest("grpc", cmd, st, time.Since(start))
	}
}

// checkName rejects what no Dovecot socket could carry: an empty name, a
// NUL (PLAIN's separator; C strings on Dovecot's side) and names longer
// than any real login name.
func checkName(what, s string) error {
	switch {
	case s == "":
		return status.Errorf(codes.InvalidArgument, "%s: empty", what)
	case len(s) > maxNameLen:
		return status.Errorf(codes.InvalidArgument, "%s: longer than %d bytes", what, maxNameLen)
	case strings.IndexByte(s, 0) >= 0:
		return status.Errorf(codes.InvalidArgument, "%s: contains NUL", what)
	}
	return nil
}

// serviceRE bounds %s: it ends up in file paths (passwd-file args),
// queries and logs, so only the characters real service names use.
var serviceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// requestInfo turns RequestInfo into the engine's Info. The gRPC peer is
// the real_* address (the service that called us, like a proxy's address
// in Dovecot).
//
// The end user's addresses in RequestInfo are believed only from a
// trusted caller (trusted_clients, trusted_uids): from anyone else they
// would choose the address allow_nets checks and the brute-force defence
// counts, and any local user can reach a loopback listener. For an
// untrusted caller the end user is at the peer's own address; a
// unix-socket peer has none, so its failures count for the account only.
// A request without a remote IP never matches allow_nets = local
// (engine.Info.NotLocal): a gRPC caller is a service acting for someone
// elsewhere, not a local tool.
func (s *Server) requestInfo(ctx context.Context, ri *authdv1.RequestInfo, mech string) (*engine.Info, error) {
	info := &engine.Info{Mech: mech, Service: "authd", NotLocal: true}
	if p, ok := peer.FromContext(ctx); ok {
		info.RealRemoteIP, info.RealRemotePort = addrParts(p.Addr)
		info.RealLocalIP, info.RealLocalPort = addrParts(p.LocalAddr)
	}
	if ri != nil {
		// Checked also when they will be ignored: a malformed request is
		// refused the same way from everyone.
		if err := readRequestInfo(ri, info); err != nil {
			return nil, err
		}
		claimed := info.RemoteIP != "" || info.LocalIP != "" || info.RemotePort != "" || info.LocalPort != ""
		if claimed && !s.policy.Load().identify(ctx).trusted {
			info.LocalIP, info.LocalPort, info.RemoteIP, info.RemotePort = "", "", "", ""
			if s.ignoredInfo.CompareAndSwap(false, true) {
				s.log.Warn("grpc: the addresses in RequestInfo from a caller that is not trusted are ignored; the connection's own address is used (trusted_clients, trusted_uids)")
			}
		}
	}
	if info.RemoteIP == "" {
		info.RemoteIP, info.RemotePort = info.RealRemoteIP, info.RealRemotePort
	}
	if info.LocalIP == "" {
		info.LocalIP, info.LocalPort = info.RealLocalIP, info.RealLocalPort
	}
	return info, nil
}

// readRequestInfo checks ri and copies it into info.
func readRequestInfo(ri *authdv1.RequestInfo, info *engine.Info) error {
	if ri.Service != "" {
		if !serviceRE.MatchString(ri.Service) {
			return status.Error(codes.InvalidArgument, "info.service: 1-64 characters of A-Z a-z 0-9 . _ -")
		}
		info.Service = ri.Service
	}
	var err error
	if info.LocalIP, err = checkIP("info.local_ip", ri.LocalIp); err != nil {
		return err
	}
	if info.RemoteIP, err = checkIP("info.remote_ip", ri.RemoteIp); err != nil {
		return err
	}
	if info.LocalPort, err = checkPort("info.local_port", ri.LocalPort); err != nil {
		return err
	}
	if info.RemotePort, err = checkPort("info.remote_port", ri.RemotePort); err != nil {
		return err
	}
	if ri.Secured {
		info.Secured = "secured"
	}
	if len(ri.Session) > 256 || strings.ContainsFunc(ri.Session, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return status.Error(codes.InvalidArgument, "info.session: longer than 256 bytes or contains control characters")
	}
	info.Session = ri.Session
	return nil
}

func addrParts(a net.Addr) (ip, port string) {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ap := ta.AddrPort(); ap.IsValid() {
			return ap.Addr().Unmap().String(), strconv.Itoa(int(ap.Port()))
		}
	}
	return "", ""
}

func checkIP(what, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", status.Errorf(codes.InvalidArgument, "%s: not an IP address", what)
	}
	return a.Unmap().String(), nil
}

func checkPort(what string, p uint32) (string, error) {
	switch {
	case p == 0:
		return "", nil
	case p > 65535:
		return "", status.Errorf(codes.InvalidArgument, "%s: not a port number", what)
	}
	return strconv.FormatUint(uint64(p), 10), nil
}

func protoFields(fs fields.Fields) []*authdv1.Field {
	if len(fs) == 0 {
		return nil
	}
	out := make([]*authdv1.Field, len(fs))
	for i, f := range fs {
		out[i] = &authdv1.Field{Key: utf8Safe(f.Key), Value: utf8Safe(f.Value)}
	}
	return out
}

// utf8Safe makes s a valid proto3 string: backends may hold other
// encodings, and marshalling an invalid string would fail the whole RPC.
func utf8Safe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
