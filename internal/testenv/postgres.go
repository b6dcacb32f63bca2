package testenv

import (
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// PostgresOptions configures StartPostgres. Zero values mean the defaults.
type PostgresOptions struct {
	Database string // created empty; default "authd"
	User     string // logs in with Password; may read and write Database's tables; default "authd"
	Password string // default "authdpw"

	// TLS, when set, makes the server offer TLS on TCP with a certificate
	// for 127.0.0.1 and localhost issued by this CA.
	TLS *CA
	// HBA lines go first in pg_hba.conf (realserver.PostgresOptions.HBA).
	HBA []string
	// Port and SocketOnly: see realserver.PostgresOptions (two clusters on
	// one port number, told apart by their socket directories).
	Port       int
	SocketOnly bool
}

// Postgres is a private PostgreSQL cluster (realserver.Postgres:
// docs/testing.md §8.3): its own data directory, socket directory and TCP
// port on 127.0.0.1, run as the postgres user. Its fields (SocketDir, Port,
// Database, User, Password, Log) and Kill and Stop are realserver's; Exec
// and Restart take the test instead of a context.
type Postgres struct {
	*realserver.Postgres
}

// StartPostgres runs initdb and postgres and creates the database and the
// user; it returns once the server accepts logins. It is stopped, and its
// data removed, at cleanup. It skips (fails under
// AUTHD_REQUIRE_INTEGRATION=1) without Debian's postgresql package.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	dir := Dir(t)
	p, err := realserver.StartPostgres(t.Context(), realserver.PostgresOptions{
		Instance: instance(dir), TLS: opts.TLS.serverFiles(t, dir), HBA: opts.HBA, Port: opts.Port, SocketOnly: opts.SocketOnly,
		Database: opts.Database, User: opts.User, Password: opts.Password,
	})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(p.Close)
	logOnFailure(t, p.Log)
	return &Postgres{p}
}

// Exec runs sql in Database as the superuser with psql and returns its
// output (tab-separated rows, no header); it fails the test on an error.
func (p *Postgres) Exec(t testing.TB, sql string) string {
	t.Helper()
	out, err := p.Postgres.Exec(t.Context(), sql)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

// Restart starts the server again on the same data, socket and port (after
// stopping it if it still runs) and waits until it accepts logins.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	if err := p.Postgres.Restart(t.Context()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
