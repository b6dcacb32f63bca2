package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/ratelog"
)

// Proxy fields as Dovecot 2.3's auth finishes them (auth-request.c,
// auth_request_proxy_finish) before a successful reply leaves on a login
// socket or as a master PASS reply; client sockets (Postfix, doveadm auth
// test) and gRPC get them as the passdb returned them, as Dovecot's
// auth_only requests do. docs/protocol.md §1.5 describes the result.
//
//   - host given as a name and no hostip: the name is resolved and hostip
//     set to its first address, because the login processes connect only
//     to addresses ("host … is not an IP"). A failed lookup is a temporary
//     failure with the proxy fields removed. The lookup waits at most
//     proxy_timeout seconds (default 10 s, Dovecot's) and never past the
//     request's deadline.
//   - proxy_maybe: when host (or hostip, or one of the name's addresses)
//     is this server's own address (the connection's real local address,
//     or one of auth_proxy_self) and port is unset or the local port, the
//     login stays here: every proxy field is dropped (proxy_always then
//     leaves a bare proxy for a director). Otherwise proxy_maybe becomes
//     proxy.
//   - no host at all: lip and lport are added for a director to decide.
//   - destuser, port, ssl, starttls and the rest pass through.

// DefaultProxyDNSTimeout is Dovecot's AUTH_DNS_DEFAULT_TIMEOUT_MSECS.
const DefaultProxyDNSTimeout = 10 * time.Second

// proxyDNSSlow: a lookup taking longer is logged (Dovecot's
// AUTH_DNS_WARN_MSECS).
const proxyDNSSlow = 500 * time.Millisecond

// Resolver resolves a host name; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ProxyFinisher finishes proxy fields. It is safe for concurrent use.
type ProxyFinisher struct {
	self     []netip.Addr // auth_proxy_self
	resolver Resolver
	log      *slog.Logger
	errLog   ratelog.Limiter
}

// NewProxyFinisher returns a finisher that treats self (auth_proxy_self,
// already resolved) as this server's addresses too.
func NewProxyFinisher(self []netip.Addr, r Resolver, log *slog.Logger) *ProxyFinisher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ProxyFinisher{self: self, resolver: r, log: log}
}

// proxyFields are dropped when a proxy reply cannot stand (Dovecot's
// auth_request_proxy_finish_failure).
var proxyFields = []string{"proxy", "proxy_maybe", "proxy_always", "host", "port", "destuser"}

// Finish returns res with its proxy fields finished, or the temporary
// failure a failed host lookup makes of it. Results that are not
// successes, or have neither proxy nor proxy_maybe, come back unchanged.
func (p *ProxyFinisher) Finish(ctx context.Context, info *Info, res Result) Result {
	if p == nil || res.Status != StatusOK || !(res.Fields.Has("proxy") || res.Fields.Has("proxy_maybe")) {
		return res
	}
	res.Fields = res.Fields.Clone()
	host, haveHost := res.Fields.Get("host")
	var self bool
	switch {
	case !haveHost:
		// A director fills in the host; it gets the local end to decide
		// proxy_maybe itself.
		if info.LocalIP != "" {
			res.Fields.Set("lip", info.LocalIP)
		}
		if info.LocalPort != "" {
			res.Fields.Set("lport", info.LocalPort)
		}
	case parseIP(host).IsValid():
		self = p.isSelf(info, parseIP(host))
	default:
		hostip, have := res.Fields.Get("hostip")
		if have {
			ip := parseIP(hostip)
			if !ip.IsValid() {
				return p.failed(res, fmt.Sprintf("proxy: invalid hostip in passdb: %q", hostip))
			}
			self = p.isSelf(info, ip)
			break
		}
		addrs, err := p.lookup(ctx, host, res.Fields)
		if err != nil {
			return p.failed(res, err.Error())
		}
		res.Fields.Set("hostip", addrs[0].String())
		for _, a := range addrs {
			self = self || p.isSelf(info, a)
		}
	}
	finishMaybe(&res, info, self)
	return res
}

// finishMaybe turns proxy_maybe into proxy, or drops the proxy fields
// when the destination is this server (auth_request_proxy_finish_ip).
func finishMaybe(res *Result, info *Info, hostIsSelf bool) {
	if !res.Fields.Has("proxy_maybe") {
		return
	}
	port, havePort := res.Fields.Get("port")
	portIsSelf := !havePort || samePort(port, info.LocalPort)
	if !hostIsSelf || !portIsSelf {
		res.Fields.Del("proxy_maybe")
		res.Fields.Set("proxy", "")
		return
	}
	always := res.Fields.Has("proxy_always")
	for _, k := range proxyFields {
		res.Fields.Del(k)
	}
	if always {
		// Still a proxy (the director picks another host): the login
		// process needs the typed password as pass=, as from Dovecot.
		res.Fields.Set("proxy", "")
		return
	}
	res.ProxyPassword = ""
}

// samePort compares a port field with the local port as numbers (an
// unknown local port is 0, as in Dovecot).
func samePort(field, local string) bool {
	f, err := strconv.ParseUint(field, 10, 32)
	if err != nil {
		return false
	}
	l, _ := strconv.ParseUint(local, 10, 16)
	return f == l
}

// isSelf reports whether ip is this server: the request's real local
// address, or one of auth_proxy_self.
func (p *ProxyFinisher) isSelf(info *Info, ip netip.Addr) bool {
	if local := parseIP(info.RealLocalIP); local.IsValid() && local == ip {
		return true
	}
	for _, a := range p.self {
		if a == ip {
			return true
		}
	}
	return false
}

// lookup resolves host within proxy_timeout (seconds, if the passdb set
// it) and the request's own deadline.
func (p *ProxyFinisher) lookup(ctx context.Context, host string, fs fields.Fields) ([]netip.Addr, error) {
	timeout := DefaultProxyDNSTimeout
	if v, ok := fs.Get("proxy_timeout"); ok {
		if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
			timeout = time.Duration(secs) * time.Second
		} else {
			p.errLog.Log(p.log, slog.LevelError, "proxy: invalid proxy_timeout value", "value", v)
		}
	}
	if len(host) > 253 {
		return nil, fmt.Errorf("proxy: DNS lookup for %.64q… failed: name too long", host)
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	addrs, err := p.resolver.LookupNetIP(lctx, "ip", host)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no address")
	}
	if err != nil {
		return nil, fmt.Errorf("proxy: DNS lookup for %s failed: %w", host, err)
	}
	if took := time.Since(start); took > proxyDNSSlow {
		p.log.Warn("proxy: slow DNS lookup", "host", host, "took", took.Round(time.Millisecond).String())
	}
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// failed is the temporary failure that replaces a proxy reply whose
// destination cannot be known; it is logged (at most once a second).
func (p *ProxyFinisher) failed(res Result, reason string) Result {
	p.errLog.Log(p.log, slog.LevelError, reason, "user", res.User)
	fs := res.Fields
	for _, k := range proxyFields {
		fs.Del(k)
	}
	return Result{Status: StatusTempFail, User: res.User, OrigUser: res.OrigUser, MasterUser: res.MasterUser, Fields: fs, Reason: reason}
}

// parseIP parses an address without zone, IPv4-mapped IPv6 as IPv4; the
// zero Addr when s is not one.
func parseIP(s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}
	}
	return a.Unmap()
}
