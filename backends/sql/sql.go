// Package sql is the SQL passdb and userdb on MySQL/MariaDB (driver =
// mysql, mysql.go), PostgreSQL (driver = pgsql, pgsql.go and pgpipe.go)
// and SQLite (driver = sqlite, sqlite.go), configured by the
// dovecot-sql.conf.ext a Dovecot 2.3 administrator already has (driver,
// connect, default_pass_scheme, password_query, user_query,
// iterate_query), read with Dovecot's own settings syntax (conf.go).
//
// # Queries and escaping
//
// Dovecot expands %-variables into the query text with values escaped by
// the driver's escaper: mysql_real_escape_string, PostgreSQL's
// PQescapeStringConn (which, with standard_conforming_strings on, only
// doubles single quotes), or, for SQLite, its own doubling of single
// quotes. authd does better where it can and the same elsewhere (query.go,
// dialect.go): a quoted literal that holds variables, such as '%u' or
// '%n@%d', becomes a placeholder (? or $n) of a prepared statement, so no
// value is ever parsed as SQL, whatever the server's sql_mode
// (NO_BACKSLASH_ESCAPES), string settings or character set. Variables
// elsewhere in the text are escaped for their context, each dialect with
// its own lexer: in PostgreSQL and SQLite "…" is an identifier, whose
// value gets its double quotes doubled (Dovecot's escaper leaves them, so
// a value could end the identifier there).
//
// Result columns become fields as in Dovecot's passdb-sql.c and
// userdb-sql.c: NULL columns are not set, an empty string is set (a flag),
// password gets the default scheme unless it starts with {SCHEME} (the
// strict rule, docs/schemes.md §2.1), password_noscheme always does. No row is
// "not found"; a passdb row set without a password column, or more than
// one row, is an error.
//
// # Connections
//
// Each host= of the connect string has its own pool (database/sql for
// MySQL and SQLite, whose one "host" is the file; pgxpool for PostgreSQL,
// with lookups pipelined on its connections); lookups run in parallel on
// its connections, never behind a lock. The pool size
// is Dovecot's maxconns= of the connect string (per host, default 5 as in
// Dovecot), or authd's own top-level pool_size, which wins; that many
// connections are opened at most and all are kept open. Hosts are tried in
// the order given: a host that fails to connect, or whose connection
// breaks, is marked down and the same lookup is retried on the next one; a
// background probe brings a host back once it answers again (every
// second). A host that is down is still tried when every host is down, so
// a single server is used again the moment it is back. Any failure is an
// error for the caller ("could not tell"), never "not found".
//
// # Differences from Dovecot 2.3
//
//   - Several host= are an ordered failover list with fail-back, not
//     Dovecot's spreading of connections over all hosts.
//   - A connect value may be quoted (password="a b"); Dovecot has no
//     quoting there and would keep the quotes.
//   - host=localhost is the unix socket, as in libmysqlclient (the socket
//     from option_file, else $MYSQL_UNIX_PORT, else
//     /run/mysqld/mysqld.sock). Option files are read only when
//     option_file is set; libmysqlclient also reads /etc/mysql/my.cnf.
//   - ssl_cipher and client_flags are accepted and ignored (logged): Go's
//     TLS offers only strong suites. With ssl_ca/ssl_ca_path the server
//     chain is verified against those CAs only; the name too unless
//     ssl_verify_server_cert=no (2.3.19's default is yes).
//   - Unknown variables, several statements, malformed %-syntax and
//     unterminated quotes in a query are configuration errors, not
//     failures of every lookup. A trailing ';' is dropped.
//   - A NULL userdb_* column cannot mark the request for prefetch as
//     Dovecot's auth_request_set_null_field does: the Passdb contract has
//     no place for it.
//   - pgsql: the connect keywords are checked (an unknown one is an
//     error, libpq's keep-alive and compression keywords are ignored),
//     sslmode=verify-ca/verify-full need sslrootcert, client_encoding is
//     UTF8, and the sessions run with standard_conforming_strings=on. A
//     value PostgreSQL cannot receive (a NUL byte, invalid UTF-8) is "not
//     found" without a query. A placeholder whose type the server cannot
//     infer (concat('%n', …)) is sent again as $n::text.
//   - sqlite: the file is opened read-only and never created; a file
//     replaced on disk is used within a second (Dovecot keeps the one it
//     opened); TEXT in columns declared DATE/DATETIME/TIMESTAMP comes back
//     in SQLite's canonical layout (sqliteText).
//
// MySQL values arrive in the binary protocol of prepared statements and
// are turned into the text the server would have sent Dovecot (values.go),
// FLOAT and DOUBLE included; TestMariaDB/values checks every column type
// against the mariadb client. PostgreSQL values are asked for in text
// format and are the server's own text (TestPostgres/values against psql);
// SQLite values are formatted as sqlite3_column_text does. The
// TestDovecotOracle tests compare fields, row rules and LIST with Dovecot
// 2.3 itself on the same database, for all three drivers.
package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

var errClosed = errors.New("sql: closed")

// probeInterval is how often a host that is down is pinged while another
// one serves, to fail back to it.
const probeInterval = time.Second

// query indexes into host.stmts.
const (
	qPass = iota
	qUser
	qIter
	numQueries
)

// DB is one dovecot-sql.conf.ext: a passdb, a userdb and an iterator over
// the same connections. It is safe for concurrent use.
type DB struct {
	log    *slog.Logger
	scheme string  // default_pass_scheme
	dl     dialect // the driver's SQL
	qs     [numQueries]*query
	hosts  []*host
	// hostErr reports whether an error of the driver means the host, not
	// the query, failed, so that the next host may answer.
	hostErr func(error) bool

	passKey, userKey *vars.Template

	// probes: background goroutines owned by the DB, stopped by Close.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed against wg.Add
	closed bool
	wg     sync.WaitGroup
}

// host is one host= entry (for SQLite: the database file) with its
// connection pool.
type host struct {
	ep    endpoint
	conns conns
	// down is when the host was marked down (UnixNano), 0 while it is up.
	down    atomic.Int64
	probing atomic.Bool
}

// conns is one host's connection pool as its driver keeps it: database/sql
// with prepared statements for MySQL and SQLite (stdConns), pgxpool for
// PostgreSQL (pgConns).
type conns interface {
	// query runs q, whose text for this request is text, and reads at
	// most limit rows (all when limit < 0) completely.
	query(ctx context.Context, q *query, text string, args []any, limit int) (*result, error)
	ping(ctx context.Context) error
	close() error
}

// New reads the dovecot-sql.conf.ext at args (Dovecot 2.3's
// `args = /etc/dovecot/dovecot-sql.conf.ext`) and returns the DB. It does
// not connect: a database that is down at start-up makes lookups fail
// until it is up. Configuration errors wrap backends.ErrConfig and carry
// file:line.
func New(args string, log *slog.Logger) (*DB, error) {
	path := strings.TrimSpace(args)
	if path == "" {
		return nil, fmt.Errorf("%w: sql: configuration file path not given in args", backends.ErrConfig)
	}
	s, err := ParseFile(path)
	if err != nil {
		return nil, err
	}
	return NewFromSettings(s, log)
}

// NewFromSettings builds the DB from settings (ParseFile's result, or
// DefaultSettings with keys Set from elsewhere). Errors wrap
// backends.ErrConfig.
func NewFromSettings(s Settings, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("driver", "sql")
	for _, w := range s.warnings {
		log.Warn("sql: configuration: " + w)
	}
	dl, err := s.checkDriver()
	if err != nil {
		return nil, err
	}
	if s.Connect == "" {
		return nil, s.cfgErr("connect", "connect string not set")
	}
	scheme := strings.ToUpper(s.DefaultPassScheme)
	if scheme == "" {
		scheme = defaultScheme
	}
	if !schemes.Known(scheme) {
		return nil, s.cfgErr("default_pass_scheme", "unknown default_pass_scheme %q", truncateForError(s.DefaultPassScheme))
	}
	d := &DB{log: log, scheme: scheme, dl: dl}
	if err := d.compileQueries(s); err != nil {
		return nil, err
	}
	switch dl {
	case dPgSQL:
		err = d.openPgSQL(s)
	case dSQLite:
		err = d.openSQLite(s)
	default:
		err = d.openMySQL(s)
	}
	if err != nil {
		d.closeHosts()
		return nil, err
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// cfgErr is a configuration error about key, with the file:line where key
// was set when known.
func (s *Settings) cfgErr(key string, format string, args ...any) error {
	return fmt.Errorf("%w: %ssql: %s", backends.ErrConfig, s.where(key), fmt.Sprintf(format, args...))
}

// checkDriver accepts the drivers authd has: mysql (which includes
// MariaDB), pgsql and sqlite.
func (s *Settings) checkDriver() (dialect, error) {
	switch s.Driver {
	case "mysql":
		return dMySQL, nil
	case "pgsql":
		return dPgSQL, nil
	case "sqlite":
		return dSQLite, nil
	case "":
		return 0, s.cfgErr("driver", "driver not set")
	case "cassandra":
		return 0, s.cfgErr("driver", "driver cassandra is not supported (authd supports mysql, which includes MariaDB, pgsql and sqlite)")
	default:
		return 0, s.cfgErr("driver", "unknown driver %q", truncateForError(s.Driver))
	}
}

// compileQueries compiles the three queries and the cache keys made of
// them, logging each query's warnings at its file:line.
func (d *DB) compileQueries(s Settings) error {
	for i, qs := range []struct{ key, src, def string }{
		{"password_query", s.PasswordQuery, DefaultPasswordQuery},
		{"user_query", s.UserQuery, DefaultUserQuery},
		{"iterate_query", s.IterateQuery, DefaultIterateQuery},
	} {
		q, err := compileQueryIn(d.dl, s.Syntax, qs.key, qs.src)
		if err != nil {
			return s.cfgErr(qs.key, "%v", err)
		}
		q.idx = i
		q.isDefault = qs.src == qs.def
		for _, w := range q.warnings {
			d.log.Warn("sql: " + s.where(qs.key) + w)
		}
		d.qs[i] = q
	}
	d.passKey = vars.CacheKeyOf(d.qs[qPass].src)
	d.userKey = vars.CacheKeyOf(d.qs[qUser].src)
	return nil
}

// DefaultScheme is the scheme of passwords stored without a {…} prefix.
func (d *DB) DefaultScheme() string { return d.scheme }

// PassCacheKey is the auth cache key template of the passdb: the
// variables password_query uses (docs/protocol.md §5.9).
func (d *DB) PassCacheKey() *vars.Template { return d.passKey }

// UserCacheKey is the auth cache key template of the userdb: the
// variables user_query uses.
func (d *DB) UserCacheKey() *vars.Template { return d.userKey }

// LookupPass implements backends.Passdb with password_query.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	q := d.qs[qPass]
	res, err := d.run(ctx, qPass, requestVars(req), 2)
	if errors.Is(err, errUnmatchable) {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	if err != nil {
		return backends.PassAnswer{}, err
	}
	if len(res.rows) == 0 {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	// Dovecot checks for the column, not its value: a NULL password is
	// allowed (proxies, nopassword).
	if res.col("password") < 0 && res.col("password_noscheme") < 0 {
		return backends.PassAnswer{}, fmt.Errorf("sql: %s must return a field named 'password'%s", q.name, q.defaultNote())
	}
	if len(res.rows) > 1 {
		return backends.PassAnswer{}, fmt.Errorf("sql: %s returned multiple matches%s", q.name, q.defaultNote())
	}
	var pe backends.PassEntry
	for i, col := range res.cols {
		v := res.rows[0][i]
		if col == "" || !v.Valid {
			continue
		}
		switch col {
		case "password", "password_noscheme":
			if pe.HasPassword {
				// Dovecot: "Multiple password values not supported";
				// the first one stays.
				d.log.Error("sql: multiple password values not supported; using the first", "query", q.name, "user", req.User)
				continue
			}
			pe.HasPassword = true
			if col == "password" {
				// SQL's strict rule: only a {…} prefix names the scheme.
				pe.Scheme, pe.Data = schemes.SplitStrict(v.String)
			} else {
				pe.Data = v.String
			}
			if pe.Scheme == "" {
				pe.Scheme = d.scheme
			}
		default:
			pe.Fields.Set(col, v.String)
		}
	}
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: pe}, nil
}

// LookupUser implements backends.Userdb with user_query: every non-NULL
// column is a userdb field.
func (d *DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	res, err := d.run(ctx, qUser, requestVars(req), 2)
	if errors.Is(err, errUnmatchable) {
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	if err != nil {
		return backends.UserAnswer{}, err
	}
	if len(res.rows) == 0 {
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	if len(res.rows) > 1 {
		// Dovecot's userdb-sql.c uses the first row and says nothing;
		// a passdb with several rows is an error. Keep Dovecot's answer
		// (a working configuration must keep working) but say so.
		d.log.Warn("sql: user_query returned more than one row; using the first, as Dovecot does", "user", req.User)
	}
	fs := make(fields.Fields, 0, len(res.cols))
	for i, col := range res.cols {
		if v := res.rows[0][i]; col != "" && v.Valid {
			fs.Set(col, v.String)
		}
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: fs}, nil
}

// IterateUsers implements backends.Iterator with iterate_query. As in
// Dovecot's userdb-sql.c, the name is the "user" column when it comes
// first, else "username" with "@domain" appended when a "domain" column is
// not NULL. The whole result is read before fn is called (Dovecot stores
// it too), so a slow LIST client never holds a database connection.
func (d *DB) IterateUsers(ctx context.Context, fn func(user string) bool) error {
	q := d.qs[qIter]
	res, err := d.run(ctx, qIter, &vars.Context{}, -1)
	if err != nil {
		return err
	}
	if len(res.rows) == 0 {
		return nil
	}
	userCol, domainCol := -1, res.col("domain")
	if res.col("user") == 0 {
		userCol, domainCol = 0, -1
	} else if userCol = res.col("username"); userCol < 0 {
		return fmt.Errorf("sql: %s didn't return 'user' field%s", q.name, q.defaultNote())
	}
	for _, row := range res.rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		u := row[userCol]
		if !u.Valid {
			return fmt.Errorf("sql: %s returned NULL user", q.name)
		}
		name := u.String
		if domainCol >= 0 && row[domainCol].Valid {
			name += "@" + row[domainCol].String
		}
		if !fn(name) {
			return nil
		}
	}
	return nil
}

// Close stops the probes and closes every connection. Lookups after
// Close fail.
func (d *DB) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	return d.closeHosts()
}

// closeHosts closes every host's connections.
func (d *DB) closeHosts() error {
	var errs []error
	for _, h := range d.hosts {
		errs = append(errs, h.conns.close())
	}
	return errors.Join(errs...)
}

func requestVars(req *backends.Request) *vars.Context {
	if req.Vars != nil {
		return req.Vars
	}
	return &vars.Context{User: req.User}
}

// result is a query's columns and up to the requested number of rows.
type result struct {
	cols []string
	rows [][]stdsql.NullString
}

// col returns the index of the first column named name, or -1 (Dovecot's
// sql_result_find_field: exact, case-sensitive).
func (r *result) col(name string) int {
	for i, c := range r.cols {
		if c == name {
			return i
		}
	}
	return -1
}

// run expands query qi for vc and runs it on the first host that answers,
// reading at most limit rows (all when limit < 0). Hosts are tried in
// order, those marked down last; a host error (connect failure, broken
// connection) moves on to the next host within the same call, any other
// error (SQL error, the caller's deadline) ends it. The result has been
// read completely before run returns, so a retry on another host can
// never deliver part of an answer twice.
func (d *DB) run(ctx context.Context, qi int, vc *vars.Context, limit int) (*result, error) {
	q := d.qs[qi]
	text, args, err := q.expand(vc)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, h := range d.order() {
		if err := ctx.Err(); err != nil {
			break
		}
		res, err := h.conns.query(ctx, q, text, args, limit)
		if n := pgIndeterminateParam(err); n > 0 && q.castParam(n) {
			// Once per parameter: the server could not type a placeholder
			// where a literal would have been text. Try again as text.
			d.log.Warn("sql: PostgreSQL cannot infer the type of a parameter; sending it as text", "query", q.name, "param", n)
			return d.run(ctx, qi, vc, limit)
		}
		if err == nil {
			d.markUp(h)
			return res, nil
		}
		if ctx.Err() != nil {
			// The caller's deadline or cancellation: the host may be
			// fine, only slower than the caller's patience.
			return nil, fmt.Errorf("sql: %s on %s: %w", q.name, h.ep, err)
		}
		if !d.hostErr(err) {
			return nil, fmt.Errorf("sql: %s on %s: %w%s", q.name, h.ep, err, q.defaultNote())
		}
		d.markDown(h, err)
		lastErr = fmt.Errorf("sql: %s on %s: %w", q.name, h.ep, err)
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("sql: %s: %w", q.name, ctx.Err())
	}
	return nil, lastErr
}

// order lists the hosts to try: those up in configuration order, then
// those down (tried only when nothing else answers).
func (d *DB) order() []*host {
	if len(d.hosts) == 1 {
		return d.hosts
	}
	out := make([]*host, 0, len(d.hosts))
	for _, h := range d.hosts {
		if h.down.Load() == 0 {
			out = append(out, h)
		}
	}
	for _, h := range d.hosts {
		if h.down.Load() != 0 {
			out = append(out, h)
		}
	}
	return out
}

func (d *DB) markUp(h *host) {
	if since := h.down.Swap(0); since != 0 {
		d.log.Info("sql: host is back", "host", h.ep.String(), "down_for", time.Since(time.Unix(0, since)).Round(time.Millisecond).String())
	}
}

func (d *DB) markDown(h *host, err error) {
	if !h.down.CompareAndSwap(0, time.Now().UnixNano()) {
		return
	}
	d.log.Warn("sql: host is down", "host", h.ep.String(), "err", err)
	if len(d.hosts) > 1 {
		d.startProbe(h)
	}
}

// startProbe runs the failback probe for h unless one runs already.
func (d *DB) startProbe(h *host) {
	if !h.probing.CompareAndSwap(false, true) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		h.probing.Store(false)
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			d.probe(h)
			h.probing.Store(false)
			// A host marked down again while this probe was finishing
			// found probing still set; it is ours to watch then.
			if h.down.Load() == 0 || d.ctx.Err() != nil || !h.probing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// probe pings h every probeInterval until it answers (or a lookup found
// it up, or Close).
func (d *DB) probe(h *host) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		}
		if h.down.Load() == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(d.ctx, 2*defaultConnectTimeout)
		err := h.conns.ping(ctx)
		cancel()
		if err == nil {
			d.markUp(h)
			return
		}
	}
}

// defaultNote adds Dovecot's hint to errors of a built-in query.
func (q *query) defaultNote() string {
	if q.isDefault {
		return " (using built-in default " + q.name + ")"
	}
	return ""
}
