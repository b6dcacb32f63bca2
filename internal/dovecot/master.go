package dovecot

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/ratelog"
	"github.com/authd-project/authd/internal/rawsock"
	"github.com/authd-project/authd/internal/tabescape"
)

// masterMaxLine is the master protocol's input limit (docs/protocol.md §2.3).
const masterMaxLine = 1024

// masterMaxReply is the longest reply line, LF included, that Dovecot
// 2.3's master clients can read: auth-master (doveadm, LDA, LMTP, the
// mail processes' USER and PASS) and master-login (REQUEST) read into an
// 8192-byte input buffer, and a line that does not fit ends the
// connection ("BUG: Received more than 8192 bytes"), failing every
// lookup on it (docs/protocol.md §2.3).
const masterMaxReply = 8192

// MasterEngine is what the master protocol needs from the pipeline.
type MasterEngine interface {
	LookupUser(ctx context.Context, info *engine.Info, name string, prefetch fields.Fields) engine.Result
	LookupUserFinal(ctx context.Context, info *engine.Info, user, orig string, prefetch fields.Fields) engine.Result
	LookupPassdb(ctx context.Context, info *engine.Info, name string) engine.Result
	ListUsers(ctx context.Context, mask string, fn func(user string) bool) error
}

// CacheFlusher flushes the auth cache: all entries, or those of users.
type CacheFlusher interface {
	Flush(users []string) int
}

// MasterConfig configures an auth-master or auth-userdb listener.
type MasterConfig struct {
	Engine MasterEngine
	Cache  CacheFlusher // may be nil (no cache)
	// Full allows REQUEST and CACHE-FLUSH (auth-master); false is an
	// auth-userdb socket.
	Full bool
	// Restrict applies the 0666 auth-userdb rule of docs/protocol.md §2.1: peers whose uid
	// and gid both differ from the socket owner's only see their own uid.
	Restrict           bool
	SocketUID, SockGID uint32
	Debug              bool
	Log                *slog.Logger
	Shared             *Shared
	// Observe, if set, is told the outcome of every finished request:
	// command is user, pass, list, request or cache_flush.
	Observe func(command string, status engine.Status, d time.Duration)
	// Penalty, if set, answers the PENALTY commands (auth-master only).
	Penalty PenaltyAdmin
	// Limits bound what a client can make authd hold; zero fields take
	// the defaults (at most DefaultMasterPending requests in progress per
	// connection, each answered within DefaultMasterRequest).
	Limits Limits
	// Proxy, if set, finishes the proxy fields of PASS replies (host
	// resolved to hostip, proxy_maybe decided), as Dovecot's PASS does.
	Proxy ProxyFinisher
}

// ProxyFinisher finishes the proxy fields of a successful passdb result
// (engine.ProxyFinisher): a host name resolved to hostip, proxy_maybe
// decided. A failed resolution comes back as a temporary failure.
type ProxyFinisher interface {
	Finish(ctx context.Context, info *engine.Info, res engine.Result) engine.Result
}

// DefaultMasterPending bounds a master connection's requests in progress:
// each runs on a goroutine, and LMTP and doveadm pipeline few.
const DefaultMasterPending = 256

// MasterServer serves the master protocol.
type MasterServer struct {
	cfg     MasterConfig
	limits  Limits
	nconns  connLimiter
	warn    ratelog.Limiter
	tooLong ratelog.Limiter // replies too long for the client
	stop    atomic.Bool

	mu       sync.Mutex
	conns    map[*masterConn]struct{}
	stopping bool
	inflight sync.WaitGroup
}

// NewMasterServer builds a master-protocol server.
func NewMasterServer(cfg MasterConfig) *MasterServer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Limits.MaxPending <= 0 {
		cfg.Limits.MaxPending = DefaultMasterPending
	}
	s := &MasterServer{cfg: cfg, conns: map[*masterConn]struct{}{}}
	s.limits = cfg.Limits.withDefaults(DefaultMasterRequest)
	s.nconns = connLimiter{max: s.limits.MaxConns, refused: &cfg.Shared.Stats.Refused, log: cfg.Log}
	return s
}

type masterConn struct {
	s          *MasterServer
	nc         net.Conn
	peerPID    int32
	peerUID    uint32
	restricted bool

	dc    *deadlineConn
	slots chan struct{} // one per request in progress

	wmu    sync.Mutex
	closed bool

	listMu  sync.Mutex
	listing bool
}

// Serve runs the master protocol on nc.
func (s *MasterServer) Serve(nc net.Conn) {
	nc = rawsock.Wrap(nc)
	if !s.nconns.acquire() {
		_ = nc.Close()
		return
	}
	defer s.nconns.release()
	c := &masterConn{s: s, nc: nc, peerPID: -1, dc: newDeadlineConn(nc, s.limits, &s.stop), slots: make(chan struct{}, s.limits.MaxPending)}
	if cred, err := PeerCred(nc); err == nil {
		c.peerPID, c.peerUID = cred.Pid, cred.Uid
		if s.cfg.Restrict && cred.Uid != s.cfg.SocketUID && cred.Gid != s.cfg.SockGID {
			c.restricted = true
		}
	} else if s.cfg.Restrict {
		c.restricted = true
	}
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.cfg.Shared.Stats.Connections.Add(1)
	defer func() {
		s.cfg.Shared.Stats.Connections.Add(-1)
		if r := recover(); r != nil {
			s.cfg.Shared.Stats.Panics.Add(1)
			s.cfg.Log.Error("panic in master connection", "panic", r, "stack", string(debug.Stack()))
		}
		s.mu.Lock()
		stopping := s.stopping
		if !stopping {
			delete(s.conns, c)
		}
		s.mu.Unlock()
		if !stopping {
			c.close() // else Shutdown closes it after the replies in flight
		}
	}()
	hs := "VERSION\t1\t1\nSPID\t" + strconv.FormatUint(uint64(s.cfg.Shared.SPID), 10) + "\n"
	if !c.write(hs) {
		return
	}
	c.readLoop()
}

// Shutdown stops reading, waits for running lookups (bounded by ctx), and
// closes the connections.
func (s *MasterServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	s.stop.Store(true)
	for c := range s.conns {
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.close()
	}
	s.mu.Unlock()
	return err
}

// PeerCred returns the credentials of a unix socket's peer (SO_PEERCRED).
func PeerCred(nc net.Conn) (*syscall.Ucred, error) {
	if rc, ok := nc.(*rawsock.Conn); ok {
		nc = rc.Conn
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, serr
}

func (c *masterConn) write(s string) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.closed = true
		_ = c.nc.Close()
		return false
	}
	return true
}

func (c *masterConn) close() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.closed {
		c.closed = true
		_ = c.nc.Close()
	}
}

func (c *masterConn) readLoop() {
	log := c.s.cfg.Log
	lr := NewLineReader(c.dc, masterMaxLine)
	gotVersion := false
	for {
		line, err := lr.ReadLine()
		if err != nil {
			var ne net.Error
			switch {
			case errors.Is(err, ErrLineTooLong):
				c.s.warn.Log(log, slog.LevelWarn, "master client sent a line longer than the limit; closing", "limit", masterMaxLine)
			case errors.As(err, &ne) && ne.Timeout() && !c.s.stop.Load():
				c.s.warn.Log(log, slog.LevelWarn, "master client did not finish its handshake or a line in time; closing")
			}
			return
		}
		args := SplitLine(line)
		if !gotVersion {
			if len(args) < 2 || args[0] != "VERSION" || args[1] != "1" {
				c.s.warn.Log(log, slog.LevelWarn, "master client did not start with VERSION 1; closing")
				return
			}
			gotVersion = true
			c.dc.handshakeDone()
			continue
		}
		c.s.mu.Lock()
		stopping := c.s.stopping
		c.s.mu.Unlock()
		if stopping {
			return
		}
		if c.s.cfg.Debug {
			log.Debug("master in", "line", redactMaster(args))
		}
		var ok bool
		switch args[0] {
		case "USER":
			ok = c.handleLookup(args, false)
		case "PASS":
			ok = c.handleLookup(args, true)
		case "LIST":
			ok = c.handleList(args)
		case "REQUEST":
			ok = c.s.cfg.Full && c.handleRequest(args)
		case "CACHE-FLUSH":
			ok = c.s.cfg.Full && c.handleFlush(args)
		case "PENALTY":
			ok = c.s.cfg.Full && c.handlePenalty(args)
		case "PENALTY-RESET":
			ok = c.s.cfg.Full && c.handlePenaltyReset(args)
		default:
			ok = false
		}
		if !ok {
			c.s.warn.Log(log, slog.LevelWarn, "master client sent an unknown or disallowed command; closing", "cmd", truncate(args[0], 32))
			return
		}
	}
}

// parseInfo reads the USER/PASS/LIST parameters.
func parseInfo(params []string) (*engine.Info, bool) {
	info := &engine.Info{}
	have := false
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "service", "protocol":
			info.Service = v
			have = true
		case "lip":
			if validIP(v) {
				info.LocalIP = v
			}
		case "rip":
			if validIP(v) {
				info.RemoteIP = v
			}
		case "lport":
			info.LocalPort = v
		case "rport":
			info.RemotePort = v
		case "real_lip":
			info.RealLocalIP = v
		case "real_rip":
			info.RealRemoteIP = v
		case "real_lport":
			info.RealLocalPort = v
		case "real_rport":
			info.RealRemotePort = v
		case "session":
			info.Session = v
		case "local_name":
			info.LocalName = v
		case "client_id":
			info.ClientID = v
		case "debug":
			info.Debug = true
		}
	}
	return info, have
}

// run runs f off the read loop: lookups may be slow and replies are
// matched by id.
func (c *masterConn) run(f func(ctx context.Context)) {
	s := c.s
	// A client that sends faster than it reads fills its slots; the read
	// loop then waits here, so it cannot make authd start goroutines
	// without end.
	c.slots <- struct{}{}
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		defer func() { <-c.slots }()
		defer func() {
			if r := recover(); r != nil {
				s.cfg.Shared.Stats.Panics.Add(1)
				s.cfg.Log.Error("panic in master request", "panic", r, "stack", string(debug.Stack()))
				c.close()
			}
		}()
		// Master clients give up after 155 s (docs/protocol.md §2.3).
		ctx, cancel := context.WithTimeout(context.Background(), s.limits.Request)
		defer cancel()
		f(ctx)
	}()
}

// observe reports a finished request to MasterConfig.Observe.
func (c *masterConn) observe(cmd string, st engine.Status, start time.Time) {
	if f := c.s.cfg.Observe; f != nil {
		f(cmd, st, time.Since(start))
	}
}

func (c *masterConn) handleLookup(args []string, pass bool) bool {
	start := time.Now()
	if len(args) < 3 {
		return false
	}
	id, ok := parseID(args[1])
	if !ok {
		return false
	}
	info, ok := parseInfo(args[3:])
	if !ok {
		return false
	}
	user := args[2]
	c.run(func(ctx context.Context) {
		sid := itoa(id)
		if !pass {
			res := c.s.cfg.Engine.LookupUser(ctx, info, user, nil)
			c.reply("user", sid, res, c.userReply(sid, res, nil), start)
			return
		}
		if c.restricted {
			c.observe("pass", engine.StatusFail, start)
			c.write("FAIL\t" + sid + "\n")
			return
		}
		res := c.s.cfg.Engine.LookupPassdb(ctx, info, user)
		if c.s.cfg.Proxy != nil {
			res = c.s.cfg.Proxy.Finish(ctx, info, res)
		}
		c.reply("pass", sid, res, passReply(sid, res), start)
	})
	return true
}

// passReply renders PASS / NOTFOUND / FAIL for a passdb lookup.
func passReply(sid string, res engine.Result) string {
	switch res.Status {
	case engine.StatusOK:
		b := []byte("PASS\t" + sid + "\tuser=")
		b = tabescape.Append(b, res.User)
		b = appendFields(b, res.Fields, false)
		return string(append(b, '\n'))
	case engine.StatusNotFound, engine.StatusUserDisabled, engine.StatusPassExpired:
		return "NOTFOUND\t" + sid + "\n"
	}
	return failLine(sid, res)
}

// reply sends line, the answer to command sid for res, and reports the
// outcome. A line longer than the client can read becomes a temporary
// failure, logged with the user and the size: sent as it is, it would
// end the client's connection and every lookup on it.
func (c *masterConn) reply(command, sid string, res engine.Result, line string, start time.Time) {
	st := res.Status
	if len(line) > masterMaxReply {
		c.s.cfg.Shared.Stats.TooLarge.Add(1)
		c.s.tooLong.Log(c.s.cfg.Log, slog.LevelError, "reply too long for a Dovecot master client; answered with a temporary failure",
			"command", command, "user", engine.LogName(res.User), "bytes", len(line), "limit", masterMaxReply)
		st, line = engine.StatusTempFail, "FAIL\t"+sid+"\n"
	}
	c.observe(command, st, start)
	c.write(line)
}

func failLine(sid string, res engine.Result) string {
	if r, ok := res.Fields.Get("reason"); ok && r != "" {
		return "FAIL\t" + sid + "\treason=" + tabescape.Escape(r) + "\n"
	}
	return "FAIL\t" + sid + "\n"
}

// userReply renders USER / NOTFOUND / FAIL for a userdb result, with the
// restricted-uid rule applied.
func (c *masterConn) userReply(sid string, res engine.Result, extra fields.Fields) string {
	switch res.Status {
	case engine.StatusOK:
		if c.restricted {
			if uid, _ := res.Userdb.Get("uid"); uid != strconv.FormatUint(uint64(c.peerUID), 10) {
				c.s.warn.Log(c.s.cfg.Log, slog.LevelWarn, "userdb client doesn't have lookup permissions for this user", "user", engine.LogName(res.User), "peer_uid", c.peerUID)
				return "FAIL\t" + sid + "\n"
			}
		}
		b := []byte("USER\t" + sid + "\t")
		b = tabescape.Append(b, res.User)
		b = appendFields(b, res.Userdb, false)
		b = appendFields(b, extra, false)
		return string(append(b, '\n'))
	case engine.StatusNotFound:
		return "NOTFOUND\t" + sid + "\n"
	default:
		// A userdb's tempfail field sends its reason field along, as
		// Dovecot's user_callback does; the engine puts it in Userdb.
		if r, ok := res.Userdb.Get("reason"); ok && r != "" && res.Status == engine.StatusTempFail {
			return "FAIL\t" + sid + "\treason=" + tabescape.Escape(r) + "\n"
		}
		return "FAIL\t" + sid + "\n"
	}
}

func (c *masterConn) handleList(args []string) bool {
	start := time.Now()
	if len(args) < 2 {
		return false
	}
	id, ok := parseID(args[1])
	if !ok {
		return false
	}
	sid := itoa(id)
	mask := ""
	for _, p := range args[2:] {
		if v, ok := strings.CutPrefix(p, "user="); ok {
			mask = v
		}
	}
	if c.restricted {
		c.observe("list", engine.StatusFail, start)
		c.write("DONE\t" + sid + "\tfail\n")
		return true
	}
	c.listMu.Lock()
	if c.listing {
		c.listMu.Unlock()
		c.observe("list", engine.StatusFail, start)
		c.write("DONE\t" + sid + "\tfail\n")
		return true
	}
	c.listing = true
	c.listMu.Unlock()
	c.run(func(ctx context.Context) {
		done := false
		defer func() {
			if !done { // a panic: let the next LIST run
				c.endList()
			}
		}()
		err := c.s.cfg.Engine.ListUsers(ctx, mask, func(u string) bool {
			b := []byte("LIST\t" + sid + "\t")
			b = tabescape.Append(b, u)
			return c.write(string(append(b, '\n')))
		})
		// The next LIST may come as soon as the client sees DONE, so the
		// listing ends before DONE is written.
		done = true
		c.endList()
		if err != nil {
			c.observe("list", engine.StatusTempFail, start)
			c.s.cfg.Log.Error("user listing failed", "err", err)
			c.write("DONE\t" + sid + "\tfail\n")
			return
		}
		c.observe("list", engine.StatusOK, start)
		c.write("DONE\t" + sid + "\t\n")
	})
	return true
}

func (c *masterConn) endList() {
	c.listMu.Lock()
	c.listing = false
	c.listMu.Unlock()
}

// handleRequest finishes a login (docs/protocol.md §2.4.4).
func (c *masterConn) handleRequest(args []string) bool {
	start := time.Now()
	if len(args) < 5 {
		return false
	}
	id, ok1 := parseID(args[1])
	cpid, ok2 := parseID(args[2])
	cid, ok3 := parseID(args[3])
	cookie, err := hex.DecodeString(args[4])
	if !ok1 || !ok2 || !ok3 || err != nil {
		return false
	}
	sid := itoa(id)
	sessionPID := int64(-1)
	wantToken := false
	for _, p := range args[5:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "session_pid":
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return false
			}
			sessionPID = n
		case "request_auth_token":
			wantToken = true
		}
	}
	if sessionPID >= 0 && int64(c.peerPID) != sessionPID {
		c.s.cfg.Log.Error("session pid provided by master did not match peer credentials", "session_pid", sessionPID, "peer_pid", c.peerPID)
		c.observe("request", engine.StatusFail, start)
		c.write("FAIL\t" + sid + "\n")
		return true
	}
	login, ok := c.s.cfg.Shared.Logins.Claim(cpid, cid, cookie)
	if !ok {
		c.observe("request", engine.StatusFail, start)
		c.write("FAIL\t" + sid + "\n")
		return true
	}
	c.run(func(ctx context.Context) {
		r := login.Result
		res := c.s.cfg.Engine.LookupUserFinal(ctx, login.Info, r.User, r.OrigUser, r.Userdb)
		var extra fields.Fields
		if r.MasterUser != "" {
			extra = append(extra, fields.Field{Key: "master_user", Value: r.MasterUser})
		}
		extra = append(extra, fields.Field{Key: "auth_mech", Value: login.Mech})
		if r.Anonymous {
			extra = append(extra, fields.Field{Key: "anonymous"})
		}
		if wantToken && sessionPID >= 0 {
			extra = append(extra, fields.Field{Key: "auth_token", Value: c.s.cfg.Shared.authToken(login.Info.Service, sessionPID, r.User, login.Info.Session)})
		}
		if r.MasterUser != "" {
			extra = append(extra, fields.Field{Key: "auth_user", Value: r.MasterUser})
		} else if r.OrigUser != "" && r.OrigUser != r.User {
			extra = append(extra, fields.Field{Key: "auth_user", Value: r.OrigUser})
		}
		c.reply("request", sid, res, c.userReply(sid, res, extra), start)
	})
	return true
}

func (c *masterConn) handleFlush(args []string) bool {
	start := time.Now()
	if len(args) < 2 {
		return false
	}
	id, ok := parseID(args[1])
	if !ok {
		return false
	}
	n := 0
	if c.s.cfg.Cache != nil {
		n = c.s.cfg.Cache.Flush(args[2:])
	}
	c.observe("cache_flush", engine.StatusOK, start)
	c.write("OK\t" + itoa(id) + "\t" + strconv.Itoa(n) + "\n")
	return true
}

// redactMaster renders a master line for the debug log with REQUEST's
// cookie hidden, as Dovecot hides it: with the cookie and the client's
// pid, anyone who can read the log could finish a stranger's login.
func redactMaster(args []string) string {
	if len(args) > 4 && args[0] == "REQUEST" {
		shown := append([]string{}, args...)
		shown[4] = "<hidden>"
		args = shown
	}
	var b []byte
	for i, a := range args {
		if i > 0 {
			b = append(b, '\t')
		}
		b = tabescape.Append(b, a)
	}
	return string(b)
}
