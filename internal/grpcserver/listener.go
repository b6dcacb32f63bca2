package grpcserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/authd-project/authd/internal/ratelog"
	"github.com/authd-project/authd/internal/rawsock"
)

// capListener serves at most limit connections at once. One past the cap
// is closed as soon as it is accepted, with a log line (at most one a
// second) and a count: the client learns at once that it must retry, and
// nothing piles up in the kernel's backlog the way it does when Accept
// simply stops being called (x/net/netutil.LimitListener), where clients
// wait without a word until their own timeout.
//
// It also reads a unix-socket client's credentials at accept
// (SO_PEERCRED) and carries them in the connection's RemoteAddr, where
// gRPC's peer.Peer hands them to the handlers: the uid a role is granted
// to cannot be faked by the client.
type capListener struct {
	net.Listener
	limit   int64
	n       atomic.Int64
	refused atomic.Int64
	log     *slog.Logger
	every   ratelog.Limiter
	// acceptErr: accept failures (EMFILE, ENFILE) at most once a second.
	acceptErr ratelog.Limiter
}

func newCapListener(ln net.Listener, limit int, log *slog.Logger) *capListener {
	return &capListener{Listener: ln, limit: int64(limit), log: log}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				// grpc-go retries a temporary error (EMFILE, ENFILE)
				// after a back-off of its own, 5 ms doubling to 1 s, but
				// logs nothing: say it here, at most once a second.
				l.acceptErr.Log(l.log, slog.LevelError, "grpc accept failed", "err", err)
			}
			return nil, err
		}
		if l.n.Add(1) > l.limit {
			l.n.Add(-1)
			l.refused.Add(1)
			_ = c.Close()
			l.every.Log(l.log, slog.LevelWarn, "grpc connection refused: the listener serves its maximum of connections (max_connections)", "max", l.limit)
			continue
		}
		// Reads and writes as raw system calls (internal/rawsock), as on
		// the Dovecot protocol's sockets; TLS, when configured, runs on top.
		pc := &peerConn{Conn: rawsock.Wrap(c), release: func() { l.n.Add(-1) }}
		if uc, ok := c.(*net.UnixConn); ok {
			pc.addr = unixPeerOf(uc)
		}
		return pc, nil
	}
}

// peerConn is an accepted connection that gives its place back on Close.
type peerConn struct {
	net.Conn
	once    sync.Once
	release func()
	addr    net.Addr // non-nil on a unix socket: the peer's credentials
}

func (c *peerConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func (c *peerConn) RemoteAddr() net.Addr {
	if c.addr != nil {
		return c.addr
	}
	return c.Conn.RemoteAddr()
}

// unixPeer is the RemoteAddr of a unix-socket client: who connected, as
// the kernel saw it at connect. ok is false when the credentials could
// not be read; such a caller has no uid and so no role.
type unixPeer struct {
	uid, gid uint32
	pid      int32
	ok       bool
}

func (unixPeer) Network() string { return "unix" }

func (p unixPeer) String() string {
	if !p.ok {
		return "unix:(unknown peer)"
	}
	return fmt.Sprintf("unix:pid=%d,uid=%d", p.pid, p.uid)
}

func unixPeerOf(uc *net.UnixConn) unixPeer {
	raw, err := uc.SyscallConn()
	if err != nil {
		return unixPeer{}
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || serr != nil {
		return unixPeer{}
	}
	return unixPeer{uid: cred.Uid, gid: cred.Gid, pid: cred.Pid, ok: true}
}
