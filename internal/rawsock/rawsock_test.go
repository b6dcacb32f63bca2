package rawsock

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// pair returns the two ends of a connected socket of the network
// ("tcp" or "unix"), both wrapped.
func pair(t *testing.T, network string) (a, b net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	d, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.FailNow()
	}
	a, b = Wrap(d), Wrap(s)
	t.Cleanup(func() { a.Close(); b.Close() })
	for _, c := range []net.Conn{a, b} {
		if _, ok := c.(*Conn); !ok {
			t.Fatalf("Wrap(%T) did not wrap", c)
		}
	}
	return a, b
}

func TestRoundTrip(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			a, b := pair(t, network)
			// Far more than the socket buffers hold: Write must wait for
			// room and go on where it stopped, Read must wait for data.
			want := make([]byte, 8<<20)
			for i := range want {
				want[i] = byte(i * 7)
			}
			errc := make(chan error, 1)
			go func() {
				n, err := a.Write(want)
				if err == nil && n != len(want) {
					err = io.ErrShortWrite
				}
				if err != nil {
					a.Close() // the reader must not wait for the rest
				}
				errc <- err
			}()
			got := make([]byte, len(want))
			_, rerr := io.ReadFull(b, got)
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if rerr != nil {
				t.Fatalf("read: %v", rerr)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("the bytes read are not the bytes written")
			}
		})
	}
}

func TestEOF(t *testing.T) {
	a, b := pair(t, "unix")
	if _, err := a.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	a.Close()
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "last" {
		t.Fatalf("ReadAll = %q, %v; want \"last\", nil (io.EOF ends it)", got, err)
	}
	if n, err := b.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	_, b := pair(t, "tcp")
	if err := b.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := b.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read past the deadline = %v; want a timeout that is os.ErrDeadlineExceeded", err)
	}
}

func TestWriteDeadline(t *testing.T) {
	a, _ := pair(t, "unix")
	// Nobody reads: once the buffers are full the write waits, until
	// its deadline.
	if err := a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := a.Write(make([]byte, 32<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write = %d, %v; want os.ErrDeadlineExceeded", n, err)
	}
	if n <= 0 || n >= 32<<20 {
		t.Fatalf("Write reported %d bytes written; want what the buffers took", n)
	}
}

func TestCloseEndsRead(t *testing.T) {
	_, b := pair(t, "unix")
	errc := make(chan error, 1)
	go func() {
		_, err := b.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	b.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed conn = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting Read")
	}
}

func TestWriteToClosedPeer(t *testing.T) {
	a, b := pair(t, "tcp")
	b.Close()
	// The first writes may still be accepted by the kernel; then the
	// peer's reset makes them fail. The process must not die of SIGPIPE.
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = a.Write([]byte("hello"))
		time.Sleep(time.Millisecond)
	}
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("Write to a closed peer = %v; want EPIPE or ECONNRESET", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("error %v is not a *net.OpError of a write", err)
	}
}

func TestWrapLeavesOthers(t *testing.T) {
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if Wrap(p) != p {
		t.Fatal("Wrap changed a net.Pipe conn")
	}
	a, _ := pair(t, "unix")
	rc, err := a.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var typ int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		typ, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TYPE)
	}); err != nil || serr != nil || typ != syscall.SOCK_STREAM {
		t.Fatalf("SO_TYPE through SyscallConn = %d, %v, %v; want a stream socket", typ, err, serr)
	}
}

// A login on an idle connection is a read and a write on each socket it
// uses: they must not allocate (a closure per call would, see Conn).
func TestReadWriteDoNotAllocate(t *testing.T) {
	a, b := pair(t, "unix")
	msg := []byte("AUTH\t1\tPLAIN\tservice=imap\n")
	buf := make([]byte, len(msg))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a Write and a Read allocate %.1f times; want 0", allocs)
	}
}
