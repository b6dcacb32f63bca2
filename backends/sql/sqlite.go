package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// The SQLite driver (driver = sqlite): modernc.org/sqlite, SQLite compiled
// to Go (no cgo, so the static build stays static), under database/sql.
//
// As in Dovecot 2.3 the connect string is the database file's path, whole.
// Unlike Dovecot, which opens it read-write and creates it when missing,
// authd opens it read-only and never creates it: a missing or unreadable
// file is a temporary failure of every lookup (and a log line), never an
// empty database that answers "unknown user". The lock wait is Dovecot's
// 1 s busy timeout.

const sqliteBusyTimeout = "1000" // ms, Dovecot's sqlite_busy_timeout

// openSQLite opens the file's pool. Nothing is opened yet.
func (d *DB) openSQLite(s Settings) error {
	path := strings.TrimSpace(s.Connect)
	if strings.ContainsRune(path, 0) {
		return s.cfgErr("connect", "the database path contains a NUL byte")
	}
	base, err := sqlite.NewConnector(sqliteDSN(path))
	if err != nil {
		return s.cfgErr("connect", "%v", err)
	}
	db := stdsql.OpenDB(sqliteConnector{base: base, path: path})
	size := s.PoolSize
	if size == 0 {
		size = defaultMaxConns
	}
	db.SetMaxOpenConns(size)
	db.SetMaxIdleConns(size)
	d.hostErr = sqliteHostError
	d.hosts = append(d.hosts, &host{ep: endpoint{net: "file", addr: path}, conns: &stdConns{db: db, text: sqliteText}})
	return nil
}

// sqliteDSN is a read-only file: URI for path (its %, ? and # escaped, as
// SQLite's URI syntax wants).
func sqliteDSN(path string) string {
	p := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + p + "?mode=ro&_pragma=busy_timeout(" + sqliteBusyTimeout + ")"
}

// sqliteConnector opens connections that know which file they opened.
type sqliteConnector struct {
	base driver.Connector
	path string
}

func (c sqliteConnector) Driver() driver.Driver { return c.base.Driver() }

func (c sqliteConnector) Connect(ctx context.Context) (driver.Conn, error) {
	fi, statErr := os.Stat(c.path)
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteDriverConn)
	if !ok || statErr != nil {
		return conn, nil
	}
	return &sqliteConn{sqliteDriverConn: inner, path: c.path, fi: fi, checked: time.Now()}, nil
}

// sqliteDriverConn is what modernc's connections implement, all of which
// a wrapper must forward (see sqlite.NewConnector).
type sqliteDriverConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.QueryerContext
	driver.ExecerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// sqliteConn is a connection that is dropped from the pool once the path
// names another file than the one it opened: a database replaced by
// rename (the usual way to publish a new one) or restored after it was
// missing or broken is used within a second. Dovecot keeps using the file
// it opened until it restarts.
type sqliteConn struct {
	sqliteDriverConn
	path string
	fi   os.FileInfo
	// checked is when the path was last found to name fi: it is looked
	// at once a second at most (database/sql uses a connection from one
	// goroutine at a time, so no lock).
	checked time.Time
}

// sqliteRecheck is how often a connection looks whether its path still
// names its file.
const sqliteRecheck = time.Second

func (c *sqliteConn) Unwrap() driver.Conn { return c.sqliteDriverConn }

func (c *sqliteConn) sameFile() bool {
	now := time.Now()
	if now.Sub(c.checked) < sqliteRecheck {
		return true
	}
	fi, err := os.Stat(c.path)
	if err != nil || !os.SameFile(fi, c.fi) {
		return false
	}
	c.checked = now
	return true
}

func (c *sqliteConn) IsValid() bool { return c.sqliteDriverConn.IsValid() && c.sameFile() }

func (c *sqliteConn) ResetSession(ctx context.Context) error {
	if !c.sameFile() {
		return driver.ErrBadConn
	}
	return c.sqliteDriverConn.ResetSession(ctx)
}

// sqliteHostError reports whether err means the database file cannot
// serve (missing, unreadable, locked, corrupt), rather than a bad query.
func sqliteHostError(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary result code
	case 3, // SQLITE_PERM
		5,  // SQLITE_BUSY
		6,  // SQLITE_LOCKED
		10, // SQLITE_IOERR
		11, // SQLITE_CORRUPT
		14, // SQLITE_CANTOPEN
		26: // SQLITE_NOTADB
		return true
	}
	return false
}

// sqliteText turns a value of modernc's driver into the text
// sqlite3_column_text gives Dovecot: integers in decimal, reals as
// SQLite formats them (sqliteFloat), text and blobs as stored.
//
// One case cannot be exact: the driver turns TEXT in a column declared
// DATE, DATETIME or TIMESTAMP into a time when it parses as one. Those come
// back in SQLite's own format, "YYYY-MM-DD HH:MM:SS[.fff…]" (a midnight in a
// DATE column as "YYYY-MM-DD"), which is what SQLite's date functions
// store; a value stored in another layout ("…T…Z") changes form. Select
// such a column as an expression (created || ”) to get its text as is.
func sqliteText(v any, ct *stdsql.ColumnType) stdsql.NullString {
	switch x := v.(type) {
	case nil:
		return stdsql.NullString{}
	case float64:
		return stdsql.NullString{String: sqliteFloat(x), Valid: true}
	case time.Time:
		s := x.Format("2006-01-02 15:04:05.999999999")
		if ct != nil && strings.EqualFold(ct.DatabaseTypeName(), "DATE") && x.Equal(x.Truncate(24*time.Hour)) {
			s = x.Format("2006-01-02")
		}
		if _, off := x.Zone(); off != 0 {
			s += x.Format("-07:00")
		}
		return stdsql.NullString{String: s, Valid: true}
	}
	return textValue(v, ct)
}

// sqliteFloat formats f as SQLite 3.40 (Debian 12's, which Dovecot uses)
// turns a REAL into text: printf's "%!.15g", that is 15 significant
// digits, exponent form below 1e-4 and from 1e15 on, and always a decimal
// point (1.0, 1.0e+21).
func sqliteFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN" // SQLite stores NaN as NULL; not reached
	case f == 0:
		return "0.0" // -0.0 too
	}
	s := strconv.FormatFloat(f, 'g', 15, 64)
	mant, exp, hasExp := strings.Cut(s, "e")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	if !hasExp {
		return mant
	}
	return mant + "e" + exp
}
