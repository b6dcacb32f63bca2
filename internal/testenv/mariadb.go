package testenv

import (
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// MariaDBOptions configures StartMariaDB. Zero values mean the defaults.
type MariaDBOptions struct {
	Database string // created empty; default "authd"
	User     string // granted SELECT, INSERT, UPDATE, DELETE on Database; default "authd"
	Password string // User's password; default "authdpw"

	// TLS, when set, makes mariadbd serve TLS with a certificate for
	// 127.0.0.1 and localhost issued by this CA.
	TLS *CA
	// RequireTLS sets require_secure_transport, so TCP logins without TLS
	// are refused (unix socket logins still work). Needs TLS.
	RequireTLS bool
}

// MariaDB is a private mariadbd (realserver.MariaDB: docs/testing.md §2):
// its own datadir, unix socket and TCP port on 127.0.0.1, root with an
// empty password (socket and TCP), and Database with User/Password for both
// 'User'@'localhost' (socket clients) and 'User'@'127.0.0.1' (TCP clients,
// as --skip-name-resolve makes these distinct). Its fields (Socket, Port,
// DSN, SocketDSN, ErrorLog …) and Kill and Stop are realserver's; Exec and
// Restart take the test instead of a context.
type MariaDB struct {
	*realserver.MariaDB
}

// StartMariaDB initialises a datadir with mariadb-install-db, starts
// mariadbd, creates the database and user, and returns once the server
// answers. It is stopped, and its datadir removed, at cleanup.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	Require(t, "mariadbd", "mariadb-install-db", "mariadb")
	if opts.RequireTLS && opts.TLS == nil {
		t.Fatalf("testenv: MariaDBOptions.RequireTLS needs TLS")
	}
	dir := Dir(t)
	m, err := realserver.StartMariaDB(t.Context(), realserver.MariaDBOptions{
		Instance: instance(dir), TLS: opts.TLS.serverFiles(t, dir), RequireTLS: opts.RequireTLS,
		Database: opts.Database, User: opts.User, Password: opts.Password,
	})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(m.Close)
	logOnFailure(t, m.ErrorLog, m.Stdout)
	return &MariaDB{m}
}

// Exec runs sql (any number of statements) as root over the socket with the
// mariadb CLI and returns its output: tab-separated rows without a header.
// LOAD DATA LOCAL INFILE is allowed, for bulk loads. It fails the test on an
// error.
func (m *MariaDB) Exec(t testing.TB, sql string) string {
	t.Helper()
	out, err := m.MariaDB.Exec(t.Context(), sql)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

// Restart starts mariadbd again on the same datadir, socket and port (after
// stopping it if it still runs) and waits until it is ready; InnoDB crash
// recovery after Kill takes a few tens of ms with these small logs.
func (m *MariaDB) Restart(t testing.TB) {
	t.Helper()
	if err := m.MariaDB.Restart(t.Context()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
