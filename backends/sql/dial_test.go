package sql

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/authd-project/authd/internal/rawsock"
)

// TestDialsWrapSockets: the dial mysqlConfig gives the MySQL driver, and
// rawDial as PostgreSQL uses it over pgx's, hand the drivers a socket
// whose reads and writes are raw (internal/rawsock) and that still
// carries bytes both ways; a failed dial stays the driver's error.
func TestDialsWrapSockets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 4)
				if _, err := c.Read(b); err == nil {
					_, _ = c.Write(b)
				}
			}()
		}
	}()
	var nd net.Dialer
	dials := map[string]func(context.Context, string, string) (net.Conn, error){
		"mysql": mysqlConfig(&connectOpts{}, endpoint{net: "unix", addr: path}, nil, driverLogger{slog.New(slog.DiscardHandler)}).DialFunc,
		"pgsql": rawDial(nd.DialContext),
	}
	for name, dial := range dials {
		if dial == nil {
			t.Fatalf("%s: no dial of authd's: the driver would use its own", name)
		}
		c, err := dial(context.Background(), "unix", path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := c.(*rawsock.Conn); !ok {
			t.Errorf("%s: dial gave a %T, want a *rawsock.Conn", name, c)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("%s: write: %v", name, err)
		}
		b := make([]byte, 4)
		if _, err := c.Read(b); err != nil || string(b) != "ping" {
			t.Errorf("%s: read %q, %v; want the echo", name, b, err)
		}
		c.Close()
		if _, err := dial(context.Background(), "unix", path+".missing"); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("%s: dialing a missing socket: %v, want ENOENT", name, err)
		}
	}
}
