package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/authd-project/authd/internal/config"
)

// service auth { inet_listener }: the client protocol over TCP for a
// Postfix on another host. Plaintext, so every connection is checked
// against the listener's allow_nets before the server reads a byte, and
// opening one is logged as a warning.

// inetBind is one TCP socket of an inet_listener.
type inetBind struct {
	cfg  config.InetListener
	addr config.InetAddr
}

// inetKey names a TCP socket in daemon.listeners and instance.handlers
// (unix sockets are keyed by their absolute path, so keys cannot clash).
func inetKey(a config.InetAddr) string { return a.Network + " " + a.Addr }

// inetBinds lists every TCP socket cfg asks for, by key.
func inetBinds(cfg *config.Config) map[string]inetBind {
	out := map[string]inetBind{}
	for _, l := range cfg.InetListeners {
		for _, a := range l.Listen {
			out[inetKey(a)] = inetBind{cfg: l, addr: a}
		}
	}
	return out
}

// listenInet opens one TCP socket. An address from Dovecot's default
// ("::" on a host without IPv6) that cannot be had is skipped (nil, nil),
// as Dovecot skips it.
func (d *daemon) listenInet(key string, b inetBind) (*listener, error) {
	ln, err := net.Listen(b.addr.Network, b.addr.Addr)
	if err != nil {
		if b.addr.Optional && (errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL)) {
			d.log.Warn("inet_listener: address not available on this host; skipped", "listener", b.cfg.Label(), "address", b.addr.Addr, "err", err)
			return nil, nil
		}
		return nil, fmt.Errorf("inet_listener %s: %w", b.cfg.Label(), err)
	}
	l := &listener{key: key, name: b.cfg.Label(), ln: ln}
	l.inet.Store(&b.cfg)
	nets := make([]string, len(b.cfg.AllowNets))
	for i, p := range b.cfg.AllowNets {
		nets[i] = p.String()
	}
	d.log.Warn("inet_listener serves the auth client protocol in PLAINTEXT over TCP: passwords cross the network unencrypted; use it only on a network you trust",
		"listener", b.cfg.Label(), "address", ln.Addr().String(), "allow_nets", strings.Join(nets, " "))
	return l, nil
}

// admit reports whether the peer of nc may use l: always on a unix
// socket, on TCP only from the listener's allow_nets.
func (d *daemon) admit(l *listener, nc net.Conn) bool {
	ic := l.inet.Load()
	if ic == nil {
		return true
	}
	var ip netip.Addr
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	}
	if ip.IsValid() && ic.Allowed(ip) {
		return true
	}
	l.refused.Log(d.log, slog.LevelWarn, "inet_listener: connection refused, the peer is not in allow_nets",
		"listener", l.name, "peer", nc.RemoteAddr().String())
	return false
}
