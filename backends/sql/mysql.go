package sql

import (
	"context"
	"crypto/tls"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/authd-project/authd/internal/rawsock"
)

// The MySQL/MariaDB driver: go-sql-driver/mysql under database/sql, one
// pool per host= of the connect string (connect.go), prepared statements
// on the server.

// connectOptions parses the connect string, with its option_file, and
// builds its TLS settings (nil without TLS). It warns about the options
// authd reads but cannot honour.
func (s *Settings) connectOptions(log *slog.Logger) (*connectOpts, *tls.Config, error) {
	o, err := parseConnect(s.Connect)
	if err != nil {
		return nil, nil, s.cfgErr("connect", "%v", err)
	}
	if err := o.applyOptionFile(); err != nil {
		return nil, nil, s.cfgErr("connect", "%v", err)
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return nil, nil, s.cfgErr("connect", "%v", err)
	}
	if tlsCfg != nil && o.sslCipher != "HIGH" {
		log.Warn("sql: ssl_cipher is ignored: Go's TLS offers only strong cipher suites (TLS 1.2+)")
	}
	if o.clientFlags != 0 {
		log.Warn("sql: client_flags is ignored")
	}
	return o, tlsCfg, nil
}

// openMySQL makes one connection pool per endpoint of the connect string.
// Nothing is dialled yet.
func (d *DB) openMySQL(s Settings) error {
	o, tlsCfg, err := s.connectOptions(d.log)
	if err != nil {
		return err
	}
	d.hostErr = isHostError
	size := s.PoolSize
	if size == 0 {
		size = o.maxConns
	}
	if size == 0 {
		size = defaultMaxConns
	}
	for _, ep := range o.endpoints() {
		c, err := mysql.NewConnector(mysqlConfig(o, ep, tlsCfg, driverLogger{d.log}))
		if err != nil {
			return s.cfgErr("connect", "host %s: %v", ep, err)
		}
		db := stdsql.OpenDB(connector{c})
		// Connections to keep: all of them. An idle connection the server
		// closed (wait_timeout) is noticed by the driver's liveness check
		// before use.
		db.SetMaxOpenConns(size)
		db.SetMaxIdleConns(size)
		d.hosts = append(d.hosts, &host{ep: ep, conns: &stdConns{db: db, text: textValue}})
	}
	return nil
}

// mysqlConfig is the driver configuration for one endpoint.
func mysqlConfig(o *connectOpts, ep endpoint, tlsCfg *tls.Config, log driverLogger) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = o.dbUser()
	cfg.Passwd = o.password
	cfg.Net = ep.net
	cfg.Addr = ep.addr
	cfg.DBName = o.dbname
	cfg.Timeout = o.connectTimeout
	cfg.ReadTimeout = o.readTimeout
	cfg.WriteTimeout = o.writeTimeout
	cfg.Logger = log
	cfg.DialFunc = rawDial(new(net.Dialer).DialContext)
	// DATETIME and friends stay text ("2020-01-02 03:04:05"), as
	// Dovecot reads them, instead of becoming time.Time.
	cfg.ParseTime = false
	// Placeholders are bound on the server, never interpolated here.
	cfg.InterpolateParams = false
	cfg.MultiStatements = false
	if tlsCfg != nil {
		t := tlsCfg.Clone()
		if !t.InsecureSkipVerify {
			t.ServerName = "localhost" // what libmysqlclient checks for a socket
			if ep.net == "tcp" {
				t.ServerName, _, _ = net.SplitHostPort(ep.addr)
			}
		}
		cfg.TLS = t
	}
	return cfg
}

// rawDial is dial with the socket's reads and writes made raw
// (internal/rawsock): every lookup is a write and a read on it. TLS, when
// asked for, runs on top. MySQL's connections get it over the driver's own
// dial (a net.Dialer; the driver bounds it with its connect timeout), and
// PostgreSQL's over pgx's.
func rawDial(dial func(context.Context, string, string) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return rawsock.Wrap(c), nil
	}
}

// stdConns is a database/sql pool with a prepared statement per query
// (MySQL, SQLite).
type stdConns struct {
	db    *stdsql.DB
	stmts [numQueries]atomic.Pointer[stdsql.Stmt]
	// text turns a scanned value into the text Dovecot's driver reads.
	text func(v any, ct *stdsql.ColumnType) stdsql.NullString
}

func (h *stdConns) ping(ctx context.Context) error { return h.db.PingContext(ctx) }

func (h *stdConns) close() error {
	var errs []error
	for i := range h.stmts {
		if st := h.stmts[i].Swap(nil); st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(append(errs, h.db.Close())...)
}

func (h *stdConns) query(ctx context.Context, q *query, text string, args []any, limit int) (*result, error) {
	var rows *stdsql.Rows
	var err error
	if q.isStat {
		var st *stdsql.Stmt
		if st, err = h.stmt(ctx, q.idx, text); err != nil {
			return nil, err
		}
		rows, err = st.QueryContext(ctx, args...)
	} else {
		// The text differs per request: database/sql prepares, runs and
		// closes it when there are arguments, or sends it as is.
		rows, err = h.db.QueryContext(ctx, text, args...)
	}
	if err != nil {
		return nil, err
	}
	return h.read(rows, limit)
}

// read reads up to limit rows (all when limit < 0) of rows, as text.
func (h *stdConns) read(rows *stdsql.Rows, limit int) (*result, error) {
	defer rows.Close()
	var err error
	res := &result{}
	if res.cols, err = rows.Columns(); err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(res.cols))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for limit < 0 || len(res.rows) < limit {
		if !rows.Next() {
			break
		}
		clear(vals)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		row := make([]stdsql.NullString, len(vals))
		for i, v := range vals {
			row[i] = h.text(v, types[i])
		}
		res.rows = append(res.rows, row)
	}
	// A connection lost in the middle of the result shows up here, not
	// as a short result: never turn it into "not found".
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return res, nil
}

// stmt returns the host's prepared statement for query qi, preparing it
// on first use (not at start-up, when the server may be down).
// database/sql then prepares it again on each new connection by itself.
func (h *stdConns) stmt(ctx context.Context, qi int, text string) (*stdsql.Stmt, error) {
	if st := h.stmts[qi].Load(); st != nil {
		return st, nil
	}
	st, err := h.db.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	if !h.stmts[qi].CompareAndSwap(nil, st) {
		st.Close() // another lookup was faster
		if st = h.stmts[qi].Load(); st == nil {
			return nil, errClosed // Close took it meanwhile
		}
	}
	return st, nil
}

// connector marks errors of connection set-up, which always mean "this
// host cannot serve now" (refused, unreachable, TLS verification, access
// denied, too many connections).
type connector struct{ driver.Connector }

func (c connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, &connectError{err}
	}
	return conn, nil
}

type connectError struct{ err error }

func (e *connectError) Error() string { return "connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

// isHostError reports whether a MySQL error means the host, not the
// query, failed, so that the next host may answer.
func isHostError(err error) bool {
	var ce *connectError
	var ne net.Error
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &ce),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, mysql.ErrInvalidConn),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &ne):
		return true
	case errors.As(err, &me):
		switch me.Number {
		case 1040, // too many connections
			1053, // server shutdown in progress
			1152, // aborted connection
			1927, // connection was killed
			4031: // disconnected by the server because of inactivity
			return true
		}
	}
	return false
}

// driverLogger sends go-sql-driver's own messages (a connection closed
// under it, and such) to the log at debug level; lookups report the
// errors that matter.
type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) {
	l.log.Debug("sql: mysql driver: " + strings.TrimSpace(fmt.Sprint(v...)))
}
