package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// On Linux an open-loop run is one event loop on one locked OS thread:
// it sends each request at its scheduled time (a timerfd armed at that
// instant) and reads the replies of every connection (epoll), with
// plain system calls on the connections' descriptors. The portable way,
// a pacer thread and a reader goroutine per connection, cost the
// generator about as much CPU per login as the server it measures at
// 25 % of Dovecot's rate (each request readied a reader goroutine and
// each reply a netpoll wake-up), and its scheduling delays showed in
// every server's tail: the machine has two cores, shared with the
// server and its backend. docs/performance.md ("The generator's own
// cost") has the figures.

// loopConn is one connection of the loop: its descriptor, taken from
// the net.Conn, and the replies read but not yet handled.
type loopConn struct {
	c  *pipeConn
	w  *Worker
	fd int
	in []byte // in[r:] is read and not yet handled
	r  int
}

// runLoop runs ph open-loop over conns (all line-protocol connections)
// at cfg.Rate until ph.t1, then reads the replies still owed until
// ph.t1 + cfg.Timeout. ok is false when it cannot run here (a
// connection without a descriptor); the caller then runs the portable
// way.
func runLoop(ctx context.Context, conns []Conn, cfg *Config, ph *phase, start time.Time) (ws []*Worker, ok bool, err error) {
	pcs := make([]*pipeConn, len(conns))
	for i, c := range conns {
		pc, isPipe := c.(*pipeConn)
		if !isPipe {
			return nil, false, nil
		}
		if _, hasFd := pc.nc.(syscall.Conn); !hasFd {
			return nil, false, nil
		}
		pcs[i] = pc
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	preciseSleeps()
	defer defaultSleeps()
	l, err := newLoop(pcs, cfg, ph)
	if err != nil {
		return nil, true, err
	}
	defer l.close()
	l.run(ctx, cfg.Rate, start, ph.t1, ph.t1.Add(cfg.Timeout), cfg.Depth)
	return l.ws, true, nil
}

// loop is runLoop's state: the epoll instance, the timer and the
// connections by descriptor.
type loop struct {
	ep, timer int
	conns     []*loopConn
	byFd      map[int]*loopConn
	ws        []*Worker
	armed     time.Time // the instant the timer is set for; zero once it fired
}

func newLoop(pcs []*pipeConn, cfg *Config, ph *phase) (*loop, error) {
	l := &loop{ep: -1, timer: -1, byFd: map[int]*loopConn{}, ws: newWorkers(len(pcs), cfg, ph)}
	var err error
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if l.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
		l.close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	if err = l.watch(l.timer); err != nil {
		l.close()
		return nil, err
	}
	for i, pc := range pcs {
		fd, err := detach(pc)
		if err != nil {
			l.close()
			return nil, err
		}
		lc := &loopConn{c: pc, w: l.ws[i], fd: fd, in: make([]byte, 0, ioBufSize)}
		// What the handshake's reads took in beyond its last line.
		if n := pc.br.Buffered(); n > 0 {
			b, _ := pc.br.Peek(n)
			lc.in = append(lc.in, b...)
		}
		l.conns = append(l.conns, lc)
		l.byFd[fd] = lc
		if err := l.watch(fd); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

// watch adds fd to the epoll set, for reading.
func (l *loop) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// detach moves pc onto a descriptor of the loop's own: a duplicate of
// the connection's, after which the net.Conn is closed, so that the Go
// runtime's network poller no longer watches the socket (each reply
// would wake one of its threads for nothing). The socket stays open
// through the duplicate.
func detach(pc *pipeConn) (int, error) {
	rc, err := pc.nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if err = errors.Join(cerr, err); err != nil {
		return -1, fmt.Errorf("duplicating a connection: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	pc.nc.Close()
	pc.bw.Reset(fdWriter(fd))
	return fd, nil
}

func (l *loop) close() {
	for _, lc := range l.conns {
		unix.Close(lc.fd)
	}
	for _, fd := range []int{l.timer, l.ep} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// run sends request k at start + k/rate on connection k mod n until end
// (or ctx's end), and handles replies as they come, until none is owed
// or the deadline passes.
func (l *loop) run(ctx context.Context, rate float64, start, end, deadline time.Time, limit int) {
	evs := make([]unix.EpollEvent, len(l.conns)+1)
	n := int64(len(l.conns))
	sending := true
	for k := int64(0); ; {
		if ctx.Err() != nil {
			l.fail(ctx.Err())
			return
		}
		now := time.Now()
		for sending {
			sched := start.Add(time.Duration(float64(k) * float64(time.Second) / rate))
			if !sched.Before(end) {
				sending = false
				l.disarm()
				break
			}
			if sched.After(now) {
				l.arm(sched)
				break
			}
			lc := l.conns[k%n]
			wasBroken := lc.dead()
			if !lc.c.sendAt(lc.w, sched, limit) {
				sending = false
				l.disarm()
			}
			if !wasBroken && lc.dead() {
				lc.w.Err(lc.c.broken) // the write failed
			}
			k++
		}
		if !sending && !l.owed() {
			return
		}
		if !sending && !now.Before(deadline) {
			l.fail(os.ErrDeadlineExceeded)
			return
		}
		l.wait(evs)
	}
}

// wait blocks until a connection is readable or the timer fires, at
// most 50 ms (so that a cancelled run and the deadline are noticed),
// and reads what the connections have.
func (l *loop) wait(evs []unix.EpollEvent) {
	nev, err := unix.EpollWait(l.ep, evs, 50)
	if err != nil {
		return // EINTR: the caller looks at the clock again
	}
	for _, ev := range evs[:nev] {
		fd := int(ev.Fd)
		lc := l.byFd[fd]
		switch {
		case fd == l.timer:
			l.armed = time.Time{} // fired: the next arm sets it again
		case lc == nil:
		case lc.dead():
			// A closed peer leaves its socket readable for good: with
			// it in the set the loop would never wait again.
			_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil)
		default:
			lc.readable()
		}
	}
}

// arm sets the timer to fire at t (unless it already is and has not
// fired). It is set relative to now, so that it never fires before t;
// setting it also clears an expiry not yet read, so the timer's
// descriptor is never read.
func (l *loop) arm(t time.Time) {
	if t.Equal(l.armed) {
		return
	}
	l.armed = t
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(max(int64(time.Until(t)), 1))}
	_ = unix.TimerfdSettime(l.timer, 0, &spec, nil)
}

// disarm stops the timer: an expiry left set would keep the loop from
// ever waiting.
func (l *loop) disarm() {
	l.armed = time.Time{}
	_ = unix.TimerfdSettime(l.timer, 0, &unix.ItimerSpec{}, nil)
}

// owed reports whether any live connection still waits for a reply.
func (l *loop) owed() bool {
	for _, lc := range l.conns {
		if !lc.dead() && len(lc.c.pending) > 0 {
			return true
		}
	}
	return false
}

// fail ends every live connection with err: requests in flight count
// as unanswered when err is the deadline, as errors otherwise.
func (l *loop) fail(err error) {
	for _, lc := range l.conns {
		if !lc.dead() {
			lc.end(err)
		}
	}
}

func (lc *loopConn) dead() bool { return lc.c.broken != nil }

// end ends lc with err, noting it for the report.
func (lc *loopConn) end(err error) {
	lc.c.mu.Lock()
	defer lc.c.mu.Unlock()
	if len(lc.c.pending) > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		err = lc.c.readFailed(err, lc.w)
		lc.w.Err(err)
	}
	lc.c.broken = err
}

// readable reads once from lc and handles every whole reply line.
func (lc *loopConn) readable() {
	if lc.r > 0 && lc.r == len(lc.in) {
		lc.in, lc.r = lc.in[:0], 0
	}
	if len(lc.in) == cap(lc.in) {
		if lc.r == 0 {
			lc.end(errors.New("server line longer than 64 KiB"))
			return
		}
		lc.in = lc.in[:copy(lc.in, lc.in[lc.r:])]
		lc.r = 0
	}
	m, err := unix.Read(lc.fd, lc.in[len(lc.in):cap(lc.in)])
	switch {
	case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
		return
	case err != nil:
		lc.end(&net.OpError{Op: "read", Net: "unix", Err: err})
		return
	case m == 0:
		lc.end(io.EOF)
		return
	}
	lc.in = lc.in[:len(lc.in)+m]
	lc.c.mu.Lock()
	defer lc.c.mu.Unlock()
	for lc.c.broken == nil {
		i := bytes.IndexByte(lc.in[lc.r:], '\n')
		if i < 0 {
			return
		}
		line := lc.in[lc.r : lc.r+i+1]
		lc.r += i + 1
		if lc.c.received(line, nil, lc.w) != nil {
			lc.w.Err(lc.c.broken)
		}
	}
}

// fdWriter writes to a non-blocking descriptor, waiting (at most a
// second at a time) while the socket's buffer is full. Meanwhile the
// loop reads nothing; at the rates and depths of a fixed-rate run a
// request line never fills a socket's buffer (a server that stops
// reading ends the connection with an error after a second).
type fdWriter int

func (fd fdWriter) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(int(fd), b[n:])
		if m > 0 {
			n += m
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			if k, perr := unix.Poll(pfd, 1000); perr != nil && !errors.Is(perr, unix.EINTR) || k == 0 && perr == nil {
				return n, fmt.Errorf("write: socket full for a second: %w", os.ErrDeadlineExceeded)
			}
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return n, &net.OpError{Op: "write", Net: "unix", Err: err}
		}
	}
	return n, nil
}
