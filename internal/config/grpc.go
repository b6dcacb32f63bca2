package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/conffile"
)

// GRPC is authd's own `grpc { }` section (docs/operations.md §5). gRPC is
// off when Listen is empty. The other fields hold their defaults
// (DefaultGRPC) when the file does not set them.
type GRPC struct {
	Listen               string // host:port, or unix:/path
	TLSCertFile          string
	TLSKeyFile           string
	TLSClientCAFile      string // set to require client certificates (mTLS)
	AllowPlaintextRemote bool   // allow listening without TLS on a non-loopback address

	// What a client can make authd hold. grpc-go's own defaults are no
	// limit at all for most of these, so every one is set explicitly.

	// MaxConnections (max_connections): connections served at once;
	// more are closed as soon as they are accepted.
	MaxConnections int
	// MaxStreams (max_streams): RPCs at once on one connection. HTTP/2
	// tells the client, which queues the rest.
	MaxStreams uint32
	// MaxMessageSize (max_message_size): the largest request message;
	// a bigger one is refused with RESOURCE_EXHAUSTED.
	MaxMessageSize int
	// HandshakeTimeout (handshake_timeout): TLS and HTTP/2 set-up must be
	// done this long after the connection was accepted.
	HandshakeTimeout time.Duration
	// RequestTimeout (request_timeout): the longest an RPC may keep a
	// backend busy when the client's deadline is later or absent.
	RequestTimeout time.Duration
	// IdleTimeout (idle_timeout): a connection without an RPC for this
	// long is closed (the client reconnects when it needs to); 0 never.
	IdleTimeout time.Duration
	// KeepaliveMinTime (keepalive_min_time): a client that pings more
	// often than this is disconnected.
	KeepaliveMinTime time.Duration
	// MaxDelayedAnswers (max_delayed_answers): Authenticate answers held
	// back at once (auth_failure_delay); past it answers leave at once.
	MaxDelayedAnswers int
	// Reflection (reflection): serve gRPC server reflection.
	Reflection bool

	// Roles: who may call the admin RPCs (ListUsers, FlushCache), and
	// whose RequestInfo addresses are believed. A client is named by
	// the CN or a subject alternative name of its verified certificate
	// (mTLS), or on a unix socket by its uid (SO_PEERCRED).
	AdminClients   []string // admin_clients
	AdminUIDs      []uint32 // admin_uids, default 0 (root)
	TrustedClients []string // trusted_clients
	TrustedUIDs    []uint32 // trusted_uids

	Pos Pos
}

// The grpc { } defaults (docs/operations.md §5 lists them).
const (
	DefaultGRPCMaxConnections    = 1024
	DefaultGRPCMaxStreams        = 128
	DefaultGRPCMaxMessageSize    = 64 << 10
	DefaultGRPCHandshakeTimeout  = 5 * time.Second
	DefaultGRPCRequestTimeout    = 10 * time.Second
	DefaultGRPCIdleTimeout       = 5 * time.Minute
	DefaultGRPCKeepaliveMinTime  = 10 * time.Second
	DefaultGRPCMaxDelayedAnswers = 10000
)

// Bounds of max_message_size: a request must hold a 12 KiB password and
// two 1 KiB names; more than a few MiB is never an authentication.
const (
	minGRPCMessageSize = 16 << 10
	maxGRPCMessageSize = 16 << 20
)

// DefaultGRPC is the grpc { } section of a file that has none: gRPC off,
// every limit at its default. Root is admin on a unix socket by default:
// root can read authd's configuration and backends and use the
// auth-master socket's LIST and CACHE-FLUSH anyway, so refusing it would
// protect nothing.
func DefaultGRPC() GRPC {
	return GRPC{
		MaxConnections:    DefaultGRPCMaxConnections,
		MaxStreams:        DefaultGRPCMaxStreams,
		MaxMessageSize:    DefaultGRPCMaxMessageSize,
		HandshakeTimeout:  DefaultGRPCHandshakeTimeout,
		RequestTimeout:    DefaultGRPCRequestTimeout,
		IdleTimeout:       DefaultGRPCIdleTimeout,
		KeepaliveMinTime:  DefaultGRPCKeepaliveMinTime,
		MaxDelayedAnswers: DefaultGRPCMaxDelayedAnswers,
		AdminUIDs:         []uint32{0},
	}
}

// IsUnix reports whether Listen is a unix socket.
func (g *GRPC) IsUnix() bool { return strings.HasPrefix(g.Listen, "unix:") }

var grpcKeys = []string{"admin_clients", "admin_uids", "allow_plaintext_remote", "handshake_timeout", "idle_timeout",
	"keepalive_min_time", "listen", "max_connections", "max_delayed_answers", "max_message_size", "max_streams",
	"reflection", "request_timeout", "tls_cert_file", "tls_client_ca_file", "tls_key_file", "trusted_clients", "trusted_uids"}

func (b *builder) grpc(n *conffile.Node) {
	if n.Label != "" {
		b.errs.add(n.Pos, "grpc { } takes no name")
	}
	g := &b.cfg.GRPC
	if g.Pos == (Pos{}) {
		g.Pos = n.Pos
	}
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in grpc { }", c.Key)
		case !contains(grpcKeys, c.Key):
			b.unknown(c.Pos, c.Key, "grpc { }", grpcKeys)
		default:
			if v, ok := b.value(c, true); ok {
				if err := setGRPC(g, c.Key, v); err != nil {
					b.errs.add(c.Pos, "%s: %v", c.Key, err)
				}
			}
		}
	}
}

// setGRPC sets one grpc { } setting; on error g is unchanged.
func setGRPC(g *GRPC, key, v string) error {
	strs := map[string]*string{"tls_cert_file": &g.TLSCertFile, "tls_key_file": &g.TLSKeyFile, "tls_client_ca_file": &g.TLSClientCAFile}
	bools := map[string]*bool{"allow_plaintext_remote": &g.AllowPlaintextRemote, "reflection": &g.Reflection}
	names := map[string]*[]string{"admin_clients": &g.AdminClients, "trusted_clients": &g.TrustedClients}
	uids := map[string]*[]uint32{"admin_uids": &g.AdminUIDs, "trusted_uids": &g.TrustedUIDs}
	switch {
	case key == "listen":
		if v != "" {
			if err := checkListen(v); err != nil {
				return err
			}
		}
		g.Listen = v
	case strs[key] != nil:
		*strs[key] = v
	case bools[key] != nil:
		x, err := conffile.ParseBool(v)
		if err != nil {
			return err
		}
		*bools[key] = x
	case names[key] != nil:
		// nil, not empty, for "nobody": the dump then loads back equal.
		*names[key] = nil
		if f := strings.Fields(v); len(f) > 0 {
			*names[key] = f
		}
	case uids[key] != nil:
		list, err := parseUIDs(v)
		if err != nil {
			return err
		}
		*uids[key] = list
	default:
		return setGRPCLimit(g, key, v)
	}
	return nil
}

var (
	errAtLeastOne    = errors.New("must be at least 1")
	errMessageBounds = fmt.Errorf("must be between %s and %s", conffile.FormatSize(minGRPCMessageSize), conffile.FormatSize(maxGRPCMessageSize))
)

// setGRPCLimit sets one of the numeric limits.
func setGRPCLimit(g *GRPC, key, v string) error {
	counts := map[string]*int{"max_connections": &g.MaxConnections, "max_delayed_answers": &g.MaxDelayedAnswers}
	durations := map[string]*time.Duration{"handshake_timeout": &g.HandshakeTimeout, "request_timeout": &g.RequestTimeout,
		"idle_timeout": &g.IdleTimeout, "keepalive_min_time": &g.KeepaliveMinTime}
	switch {
	case key == "max_streams":
		n, err := conffile.ParseUint32(v)
		if err == nil && n == 0 {
			err = errAtLeastOne
		}
		if err != nil {
			return err
		}
		g.MaxStreams = n
	case key == "max_message_size":
		n, err := conffile.ParseSize(v)
		if err == nil && (n < minGRPCMessageSize || n > maxGRPCMessageSize) {
			err = errMessageBounds
		}
		if err != nil {
			return err
		}
		g.MaxMessageSize = int(n)
	case counts[key] != nil:
		n, err := conffile.ParseUint32(v)
		if err == nil && n == 0 {
			err = errAtLeastOne
		}
		if err != nil {
			return err
		}
		*counts[key] = int(n)
	case durations[key] != nil:
		d, err := conffile.ParseDuration(v, true)
		if err == nil && d <= 0 && key != "idle_timeout" {
			err = errNotPositiveDuration
		}
		if err != nil {
			return err
		}
		*durations[key] = d
	}
	return nil
}

// parseUIDs reads a list of numeric user ids separated by blanks or
// commas. Names are not resolved: the file means the same on every host.
func parseUIDs(v string) ([]uint32, error) {
	var list []uint32
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		n, err := conffile.ParseUint32(w)
		if err != nil {
			return nil, fmt.Errorf("%q is not a numeric uid (id -u NAME prints it)", w)
		}
		if !slices.Contains(list, n) {
			list = append(list, n)
		}
	}
	return list, nil
}

func formatUIDs(list []uint32) string {
	s := make([]string, len(list))
	for i, u := range list {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(s, " ")
}

func (b *builder) finishGRPC() {
	g := &b.cfg.GRPC
	switch {
	case (g.TLSCertFile == "") != (g.TLSKeyFile == ""):
		b.errs.add(g.Pos, "grpc: tls_cert_file and tls_key_file must be set together")
	case g.TLSClientCAFile != "" && g.TLSCertFile == "":
		b.errs.add(g.Pos, "grpc: tls_client_ca_file needs tls_cert_file and tls_key_file")
	case g.Listen != "" && g.TLSCertFile == "" && !isLoopback(g.Listen) && !g.IsUnix() && !g.AllowPlaintextRemote:
		b.errs.add(g.Pos, "grpc: listen = %s is not a loopback address and TLS is off; set tls_cert_file and tls_key_file, or allow_plaintext_remote = yes", g.Listen)
	}
	// A certificate name means something only when the certificate was
	// checked against the client CA.
	if (len(g.AdminClients) > 0 || len(g.TrustedClients) > 0) && g.TLSClientCAFile == "" {
		b.errs.add(g.Pos, "grpc: admin_clients and trusted_clients name client certificates: they need tls_client_ca_file (mTLS)")
	}
	if g.Listen == "" && (g.TLSCertFile != "" || g.TLSClientCAFile != "") {
		b.warns.add(g.Pos, "grpc { } has TLS settings but no listen; gRPC is off")
	}
	changedAdmins := len(g.AdminUIDs) > 0 && !slices.Equal(g.AdminUIDs, DefaultGRPC().AdminUIDs)
	if g.Listen != "" && !g.IsUnix() && (len(g.TrustedUIDs) > 0 || changedAdmins) {
		b.warns.add(g.Pos, "grpc: admin_uids and trusted_uids apply to a unix: listener only; listen = %s is not one", g.Listen)
	}
}

func (d *dumper) grpc(g GRPC) {
	d.open("grpc", "")
	d.kv("listen", g.Listen)
	d.kv("tls_cert_file", g.TLSCertFile)
	d.kv("tls_key_file", g.TLSKeyFile)
	d.kv("tls_client_ca_file", g.TLSClientCAFile)
	d.kv("allow_plaintext_remote", yesNo(g.AllowPlaintextRemote))
	d.kv("max_connections", strconv.Itoa(g.MaxConnections))
	d.kv("max_streams", strconv.FormatUint(uint64(g.MaxStreams), 10))
	d.kv("max_message_size", conffile.FormatSize(int64(g.MaxMessageSize)))
	d.kv("handshake_timeout", conffile.FormatDuration(g.HandshakeTimeout))
	d.kv("request_timeout", conffile.FormatDuration(g.RequestTimeout))
	d.kv("idle_timeout", conffile.FormatDuration(g.IdleTimeout))
	d.kv("keepalive_min_time", conffile.FormatDuration(g.KeepaliveMinTime))
	d.kv("max_delayed_answers", strconv.Itoa(g.MaxDelayedAnswers))
	d.kv("reflection", yesNo(g.Reflection))
	d.kv("admin_clients", strings.Join(g.AdminClients, " "))
	d.kv("admin_uids", formatUIDs(g.AdminUIDs))
	d.kv("trusted_clients", strings.Join(g.TrustedClients, " "))
	d.kv("trusted_uids", formatUIDs(g.TrustedUIDs))
	d.close()
}
