package grpcserver

import (
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/internal/rawsock"
)

// TestAcceptWrapsSockets: an accepted TCP or unix connection reads and
// writes with raw system calls (internal/rawsock), and a unix client
// still gets its credentials as the remote address.
func TestAcceptWrapsSockets(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = filepath.Join(t.TempDir(), "grpc.sock")
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		cl := newCapListener(ln, 4, slog.New(slog.DiscardHandler))
		client, err := net.Dial(network, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := cl.Accept()
		if err != nil {
			t.Fatal(err)
		}
		pc, ok := c.(*peerConn)
		if !ok {
			t.Fatalf("%s: Accept gave a %T", network, c)
		}
		if _, ok := pc.Conn.(*rawsock.Conn); !ok {
			t.Errorf("%s: accepted connection is a %T, want a *rawsock.Conn", network, pc.Conn)
		}
		if _, ok := pc.RemoteAddr().(unixPeer); network == "unix" && !ok {
			t.Errorf("unix: RemoteAddr is a %T, want the peer's credentials", pc.RemoteAddr())
		}
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4)
		if _, err := c.Read(b); err != nil || string(b) != "ping" {
			t.Errorf("%s: read %q, %v", network, b, err)
		}
		client.Close()
		c.Close()
		ln.Close()
	}
}
