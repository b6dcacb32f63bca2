package sql

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL driver (driver = pgsql): pgx's own pool (pgxpool), one per
// host= of the connect string.
//
// Why pgx itself and not its database/sql adapter: lookups ask for every
// result column in PostgreSQL's text format and read the raw bytes, which
// are exactly the strings libpq hands Dovecot (PQgetvalue), whatever the
// column type (numeric, timestamptz, bool as t/f, arrays, bytea as \x…).
// Through database/sql each value would be decoded into a Go type and
// would have to be formatted back the way the server does, as values.go
// must for MySQL's binary protocol. And pgx's pipeline mode lets lookups
// that arrive together share a connection's round trip (pgpipe.go), which
// database/sql, one statement per connection at a time, cannot.
//
// The connect string is libpq's keyword=value list, as Dovecot hands it
// to PQconnectStart after taking out host= and maxconns= (driver-sqlpool.c):
// every host= is a host tried in order (a name, an address, or a
// directory holding the server's unix socket), and the other keywords
// apply to all of them.

const (
	pgDefaultConnectTimeout = 5 * time.Second // Dovecot's SQL_CONNECT_TIMEOUT_SECS
)

// pgKeys are the libpq keywords authd passes on to pgx.
var pgKeys = map[string]bool{
	"port": true, "dbname": true, "user": true, "password": true, "passfile": true,
	"sslmode": true, "sslcert": true, "sslkey": true, "sslrootcert": true, "sslpassword": true, "sslsni": true,
	"application_name": true, "options": true, "target_session_attrs": true,
	"krbsrvname": true, "krbspn": true, "service": true, "servicefile": true, "channel_binding": true,
}

// pgIgnoredKeys are libpq keywords that tune what authd does its own way
// (TCP keep-alives, compression nobody offers): accepted, logged, unused.
var pgIgnoredKeys = map[string]bool{
	"keepalives": true, "keepalives_idle": true, "keepalives_interval": true, "keepalives_count": true,
	"tcp_user_timeout": true, "sslcompression": true, "gssencmode": true, "fallback_application_name": true,
}

// pgConnect is a parsed pgsql connect string.
type pgConnect struct {
	hosts          []string    // host= and hostaddr= values, in order; none: libpq's default
	params         [][2]string // the other keywords, in order
	connectTimeout time.Duration
	maxConns       int
	ignored        []string // keywords accepted and not used, for a warning
}

// parsePgConnect parses a pgsql connect string. Values may be quoted as
// libpq quotes them ('a b', with \' and \\). Errors name the keyword,
// never a value, which may be the password.
func parsePgConnect(s string) (*pgConnect, error) {
	words, err := splitConnect(s)
	if err != nil {
		return nil, err
	}
	o := &pgConnect{connectTimeout: pgDefaultConnectTimeout}
	for n, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("connect: word %d has no '=' (quote values that contain spaces)", n+1)
		}
		if err := o.set(k, v); err != nil {
			return nil, err
		}
	}
	return o, o.checkTLS()
}

func (o *pgConnect) set(k, v string) error {
	switch {
	case k == "host" || k == "hostaddr":
		if v == "" {
			return fmt.Errorf("connect: empty %s", k)
		}
		o.hosts = append(o.hosts, v)
	case k == "maxconns":
		n, err := parseUint(v)
		if err != nil || n > maxPoolSize {
			return fmt.Errorf("connect: invalid value for maxconns: %q", v)
		}
		o.maxConns = int(n)
	case k == "connect_timeout":
		n, err := parseUint(v)
		if err != nil || n > 24*3600 {
			return fmt.Errorf("connect: invalid connect_timeout: %q (seconds)", v)
		}
		if n > 0 { // libpq: 0 waits for ever; Dovecot's own 5 s apply then
			o.connectTimeout = time.Duration(n) * time.Second
		}
	case k == "client_encoding":
		// Lookups send and read UTF-8 (representable relies on it).
		if e := strings.ToUpper(strings.ReplaceAll(v, "-", "")); e != "UTF8" && e != "UNICODE" {
			return fmt.Errorf("connect: client_encoding %q is not supported: authd talks to PostgreSQL in UTF8", v)
		}
	case pgKeys[k]:
		o.params = append(o.params, [2]string{k, v})
	case pgIgnoredKeys[k]:
		o.ignored = append(o.ignored, k)
	default:
		return fmt.Errorf("connect: unknown or unsupported connect option: %s", truncateForError(k))
	}
	return nil
}

// checkTLS refuses sslmode=verify-ca/verify-full without sslrootcert:
// authd does not fall back to the system's public CAs for the database.
func (o *pgConnect) checkTLS() error {
	var mode, root string
	for _, p := range o.params {
		switch p[0] {
		case "sslmode":
			mode = p[1]
		case "sslrootcert":
			root = p[1]
		}
	}
	switch mode {
	case "", "disable", "allow", "prefer", "require":
	case "verify-ca", "verify-full":
		if root == "" {
			return fmt.Errorf("connect: sslmode=%s needs sslrootcert (the CA that issued the server's certificate)", mode)
		}
	default:
		return fmt.Errorf("connect: invalid sslmode %q", mode)
	}
	return nil
}

// connString is the libpq-style connect string pgx parses for host h
// ("" for libpq's default host).
func (o *pgConnect) connString(h string) string {
	var b strings.Builder
	add := func(k, v string) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(pgQuote(v))
	}
	if h != "" {
		add("host", h)
	}
	for _, p := range o.params {
		add(p[0], p[1])
	}
	add("connect_timeout", strconv.Itoa(int(o.connectTimeout/time.Second)))
	return b.String()
}

// pgQuote quotes a connect-string value as libpq reads it.
func pgQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// openPgSQL makes one pgxpool per host. Nothing is dialled yet.
func (d *DB) openPgSQL(s Settings) error {
	o, err := parsePgConnect(s.Connect)
	if err != nil {
		return s.cfgErr("connect", "%v", err)
	}
	if len(o.ignored) > 0 {
		d.log.Warn("sql: connect options ignored by authd: " + strings.Join(o.ignored, ", "))
	}
	d.hostErr = pgHostError
	size := s.PoolSize
	if size == 0 {
		size = o.maxConns
	}
	if size == 0 {
		size = defaultMaxConns
	}
	hosts := o.hosts
	if len(hosts) == 0 {
		hosts = []string{""} // libpq's default: $PGHOST, else the local socket
	}
	for _, h := range hosts {
		cfg, err := pgxpool.ParseConfig(o.connString(h))
		if err != nil {
			return s.cfgErr("connect", "host %s: %v", pgHostName(h), pgConfigError(err))
		}
		cfg.MaxConns = int32(size)
		cfg.ConnConfig.DialFunc = rawDial(cfg.ConnConfig.DialFunc) // pgx's dial, with connect_timeout if set
		rt := cfg.ConnConfig.RuntimeParams
		// The lexer's reading of '…' (no backslash escapes), and UTF-8
		// both ways (see dialect.representable).
		rt["standard_conforming_strings"] = "on"
		rt["client_encoding"] = "UTF8"
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return s.cfgErr("connect", "host %s: %v", pgHostName(h), pgConfigError(err))
		}
		d.hosts = append(d.hosts, &host{ep: endpoint{net: "pgsql", addr: pgHostName(h)}, conns: newPgConns(pool, size)})
	}
	return nil
}

func pgHostName(h string) string {
	if h == "" {
		return "(default host)"
	}
	return h
}

// pgConfigError keeps the reason of a pgx configuration error without the
// connect string it quotes (pgx hides the password, as best it can).
func pgConfigError(err error) error {
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		if inner := pce.Unwrap(); inner != nil {
			return fmt.Errorf("invalid connect string: %w", inner)
		}
		return errors.New("invalid connect string")
	}
	return err
}

// pgHostError reports whether a PostgreSQL error means the host, not the
// query, failed: no connection, a connection lost, or the server shutting
// down, starting up or out of connections.
func pgHostError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, pgconn.ErrConnClosed), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pe):
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", // admin_shutdown
			pe.Code == "57P02", // crash_shutdown
			pe.Code == "57P03", // cannot_connect_now (starting up, recovering)
			pe.Code == "53300": // too_many_connections
			return true
		}
	}
	return false
}

var indeterminateParam = regexp.MustCompile(`parameter \$([0-9]+)`)

// pgIndeterminateParam returns n when err is PostgreSQL's "could not
// determine data type of parameter $n" (42P18), else 0.
func pgIndeterminateParam(err error) int {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != "42P18" {
		return 0
	}
	m := indeterminateParam.FindStringSubmatch(pe.Message)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
