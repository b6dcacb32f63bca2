package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
)

// InetListener is `service auth { inet_listener NAME { } }`: the client
// protocol over TCP, for a Postfix on another host
// (smtpd_sasl_path = inet:host:port). Dovecot's settings address, port,
// ssl, haproxy and reuse_port, plus authd's own allow_nets. The protocol
// is plaintext, so only peers allow_nets lists may connect: loopback
// unless set.
type InetListener struct {
	Name string // the section label; may be empty
	// Listen holds one address per bound socket: address's entries with
	// the port ("0.0.0.0:12345", "[::]:12345", "mx1.example.com:12345"),
	// in order. Entries from Dovecot's default address ("*, ::", when
	// neither address nor listen is set) are Optional: a host without
	// IPv6 skips "::".
	Listen []InetAddr
	Port   int
	// AllowNets are the networks whose peers may connect; any other peer
	// is disconnected at once, before a byte is read.
	AllowNets []netip.Prefix
	Pos       Pos
}

// InetAddr is one address an inet_listener binds.
type InetAddr struct {
	Network  string // tcp4, tcp6, or tcp for a host name
	Addr     string // host:port for net.Listen
	Optional bool   // from the default address: may be skipped if unavailable
}

// Label names the listener in logs and metrics: its name, or "inet:PORT".
func (l InetListener) Label() string {
	if l.Name != "" {
		return l.Name
	}
	return "inet:" + strconv.Itoa(l.Port)
}

// Allowed reports whether a peer at ip may connect.
func (l InetListener) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range l.AllowNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// defaultInetAllow is the allowlist without allow_nets: this host only.
func defaultInetAllow() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

var inetListenerKeys = []string{"address", "allow_nets", "haproxy", "port", "reuse_port", "ssl"}

// inetListener reads one `inet_listener [NAME] { }` block of service auth.
// Only the client protocol is served over TCP: a login, master or userdb
// socket trusts what its peer says (rip, no-penalty) or hands out user
// data, which no network peer should be trusted with.
func (b *builder) inetListener(n *conffile.Node) {
	l := InetListener{Name: n.Label, Pos: n.Pos}
	if role, ok := RoleFromName(n.Label); !ok || role != RoleClient {
		b.errs.add(n.Pos, "inet_listener %s: authd serves only the client protocol over TCP (for Postfix's smtpd_sasl_path = inet:host:port); login, master, userdb and token sockets stay unix sockets (rename the listener)", n.Label)
		return
	}
	address, haveAddress := "", false
	for _, c := range n.Children {
		if c.IsInclude() {
			continue
		}
		if c.Section {
			b.errs.add(c.Pos, "section %q is not allowed in inet_listener { }", c.Key)
			continue
		}
		v, ok := b.value(c, true)
		if !ok {
			continue
		}
		switch c.Key {
		case "address":
			address, haveAddress = v, true
		case "port":
			p, err := strconv.ParseUint(strings.TrimSpace(v), 10, 16)
			if err != nil {
				b.errs.add(c.Pos, "port: %q is not a port number (0-65535)", v)
				continue
			}
			l.Port = int(p)
		case "allow_nets":
			l.AllowNets = b.inetAllowNets(c.Pos, v)
		case "ssl", "haproxy":
			if on, err := conffile.ParseBool(v); err != nil || on {
				b.errs.add(c.Pos, "%s = %s: authd's inet_listener has no TLS and no HAProxy protocol; terminate them in front of it (e.g. stunnel) or use a unix socket", c.Key, v)
			}
		case "reuse_port":
			if _, err := conffile.ParseBool(v); err != nil {
				b.errs.add(c.Pos, "reuse_port: %v", err)
			}
			b.ignore("service auth/inet_listener/reuse_port")
		default:
			b.unknown(c.Pos, c.Key, "inet_listener { }", inetListenerKeys)
		}
	}
	if l.Port == 0 {
		// Dovecot's port = 0 (and no port) disables a listener.
		return
	}
	if l.AllowNets == nil {
		l.AllowNets = defaultInetAllow()
	}
	b.inet = append(b.inet, inetPending{l: l, address: address, haveAddress: haveAddress})
}

// inetPending is a listener whose addresses wait for the end of the file:
// without `address` it takes Dovecot's top-level listen, wherever that is
// set.
type inetPending struct {
	l           InetListener
	address     string
	haveAddress bool
}

// inetAllowNets parses allow_nets: addresses and CIDR networks separated
// by spaces or commas.
func (b *builder) inetAllowNets(pos Pos, v string) []netip.Prefix {
	out := []netip.Prefix{}
	items := splitList(v, " \t,")
	for _, item := range items {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		b.errs.add(pos, "allow_nets: %q is not an address or a network (e.g. 192.0.2.10 or 192.0.2.0/24)", item)
	}
	if len(items) == 0 {
		b.errs.add(pos, "allow_nets is empty: no peer could connect (leave it out for loopback only)")
	}
	return out
}

// finishInetListeners gives every inet_listener its bind addresses and
// refuses two listeners on one address and port.
func (b *builder) finishInetListeners() {
	seen := map[string]string{}
	for _, p := range b.inet {
		l := p.l
		address, optional := p.address, false
		if !p.haveAddress {
			var set bool
			if address, set = b.vals["listen"]; !set {
				address, optional = dovecotRootDefaults["listen"], true
			}
		}
		items := splitList(address, " \t,")
		for _, a := range items {
			ia, ok := inetAddr(a, l.Port, optional)
			if !ok {
				b.errs.add(l.Pos, "inet_listener %s: address %q is neither an IP address, *, :: nor a host name", l.Label(), a)
				continue
			}
			if prev, dup := seen[ia.Network+" "+ia.Addr]; dup {
				b.errs.add(l.Pos, "inet_listener %s: %s is already used by inet_listener %s", l.Label(), ia.Addr, prev)
				continue
			}
			seen[ia.Network+" "+ia.Addr] = l.Label()
			l.Listen = append(l.Listen, ia)
		}
		if len(items) == 0 {
			b.errs.add(l.Pos, "inet_listener %s: no address to listen on", l.Label())
		}
		if len(l.Listen) < len(items) {
			continue
		}
		b.cfg.InetListeners = append(b.cfg.InetListeners, l)
		b.warns.add(l.Pos, "inet_listener %s serves the auth protocol in plaintext on port %d: passwords cross the network unencrypted; keep it on a network you trust", l.Label(), l.Port)
	}
}

// inetAddr turns one entry of Dovecot's address list into what net.Listen
// takes. "*" is every IPv4 address and "::" every IPv6 one, each its own
// socket as in Dovecot.
func inetAddr(a string, port int, optional bool) (InetAddr, bool) {
	ps := strconv.Itoa(port)
	switch a {
	case "*":
		return InetAddr{Network: "tcp4", Addr: "0.0.0.0:" + ps, Optional: optional}, true
	case "::", "[::]":
		return InetAddr{Network: "tcp6", Addr: "[::]:" + ps, Optional: optional}, true
	}
	host := strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
	if ip, err := netip.ParseAddr(host); err == nil {
		network := "tcp6"
		if ip.Unmap().Is4() {
			network, ip = "tcp4", ip.Unmap()
		}
		return InetAddr{Network: network, Addr: net.JoinHostPort(ip.String(), ps), Optional: optional}, true
	}
	if !validHostName(host) {
		return InetAddr{}, false
	}
	return InetAddr{Network: "tcp", Addr: net.JoinHostPort(host, ps), Optional: optional}, true
}

// validHostName accepts DNS names (letters, digits, '-', '.', '_').
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
