// Package rawsock reads and writes stream sockets without the Go
// scheduler's system-call bookkeeping.
//
// A Read or Write on a net.Conn enters the runtime's system-call state,
// and the first one after the daemon was idle wakes the runtime's monitor
// thread (sysmon) from its deep sleep; woken that way, it polls every
// 20 µs for a millisecond before it sleeps again. At a few thousand
// logins per second every login wakes it, and in perf that cost authd
// about a tenth of its CPU per login, part of it on the login's own path
// (docs/performance.md, "What is left on the hot path"). The runtime needs
// that bookkeeping for calls that may block, so that it can lend the
// blocked thread's processor to others; a read or write on a non-blocking
// socket never blocks (it fails with EAGAIN instead), so Conn makes it as
// a raw system call, and waits for readiness through the network poller
// as net.Conn does, deadlines included.
package rawsock

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

// Conn is a stream socket whose Read and Write are raw system calls.
// Everything else (deadlines, addresses, Close) is the wrapped net.Conn's.
//
// The functions handed to the syscall.RawConn are made once, with the
// Conn, and find their buffer and results in it: a closure made per call
// escapes to the heap (four allocations per login on an idle connection).
// Each direction's state is guarded by its own mutex, so concurrent
// Reads (or Writes) stay as safe as on a net.Conn.
type Conn struct {
	net.Conn
	rc syscall.RawConn

	rmu    sync.Mutex
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(fd uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
}

// Wrap returns c as a Conn when it is a TCP or unix stream socket, and c
// itself otherwise (a TLS connection, a pipe in a test).
func Wrap(c net.Conn) net.Conn {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
	default:
		return c
	}
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return c
	}
	w := &Conn{Conn: c, rc: rc}
	w.readFn, w.writeFn = w.readSome, w.writeAll
	return w
}

// SyscallConn is the socket's, so that code that checks a connection
// through it (a pool's liveness check, SO_PEERCRED) sees the socket.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// Read reads what the socket has, waiting for it if it has nothing.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rbuf, c.rn, c.rerrno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerrno
	c.rbuf = nil // the caller's buffer is not ours to keep
	c.rmu.Unlock()
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// readSome is one attempt of Read: false means "nothing yet, wait".
func (c *Conn) readSome(fd uintptr) bool {
	p := c.rbuf
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerrno = int(r), e
		return true
	}
}

// Write writes all of p, waiting for room in the socket's buffer as
// needed.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	c.wbuf, c.wn, c.werrno = p, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werrno
	c.wbuf = nil
	c.wmu.Unlock()
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno != 0:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

// writeAll writes what is left of the buffer until the socket takes no
// more (false: wait for room) or it is all written.
func (c *Conn) writeAll(fd uintptr) bool {
	p := c.wbuf
	for c.wn < len(p) {
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[c.wn])), uintptr(len(p)-c.wn))
		switch e {
		case 0:
			c.wn += int(r)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werrno = e
			return true
		}
	}
	return true
}

// opError wraps err as net.Conn's methods do, so that callers that ask
// for a net.Error (a timeout) or errors.Is(err, os.ErrDeadlineExceeded)
// see what they would have seen.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
