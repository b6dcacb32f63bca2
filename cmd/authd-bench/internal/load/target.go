package load

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Target is where the load goes: a unix socket or a loopback TCP address.
type Target struct {
	Network string // "unix" or "tcp"
	Address string // socket path, or "host:port" with a loopback host
}

func (t Target) String() string {
	if t.Network == "unix" {
		return "unix:" + t.Address
	}
	return t.Address
}

// ErrNotLoopback is returned by ParseTarget for a TCP address whose host is
// not a loopback address. The load generator exists to size one machine;
// pointed elsewhere it is a denial-of-service tool, so it refuses.
var ErrNotLoopback = errors.New("only unix sockets and loopback addresses are allowed")

// ParseTarget parses a target: a socket path ("/run/authd/auth-client",
// "./run/auth-client", "unix:PATH"), or "HOST:PORT" where HOST is a
// loopback IP literal (127.0.0.0/8, ::1) or "localhost" (dialled as
// 127.0.0.1). Host names other
// than localhost are refused without being resolved: a name could resolve
// to anything.
func ParseTarget(s string) (Target, error) {
	switch {
	case s == "":
		return Target{}, errors.New("empty target")
	case strings.HasPrefix(s, "unix:"):
		p := strings.TrimPrefix(s, "unix:")
		if p == "" {
			return Target{}, fmt.Errorf("target %q: empty socket path", s)
		}
		return Target{Network: "unix", Address: p}, nil
	case strings.HasPrefix(s, "/"), strings.HasPrefix(s, "./"), strings.HasPrefix(s, "../"):
		return Target{Network: "unix", Address: s}, nil
	}
	s = strings.TrimPrefix(s, "tcp:")
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// Neither a host:port nor an obvious path: a relative socket path
		// such as "auth-client" is the only other sensible reading, and it
		// cannot leave the machine.
		if !strings.Contains(s, ":") {
			return Target{Network: "unix", Address: s}, nil
		}
		return Target{}, fmt.Errorf("target %q: %v", s, err)
	}
	if port == "" {
		return Target{}, fmt.Errorf("target %q: missing port", s)
	}
	if !isLoopbackHost(host) {
		return Target{}, fmt.Errorf("target %q: %w", s, ErrNotLoopback)
	}
	if strings.EqualFold(host, "localhost") {
		// Dial the literal: /etc/hosts decides what "localhost" means,
		// and it need not be loopback.
		host = "127.0.0.1"
	}
	return Target{Network: "tcp", Address: net.JoinHostPort(host, port)}, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	// A zone (fe80::1%lo) is never loopback; ParseAddr keeps it and
	// IsLoopback then says no.
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return a.Unmap().IsLoopback()
}
