package testenv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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

// MariaDB is a private mariadbd (realservers.md §2): its own datadir, unix
// socket and TCP port on 127.0.0.1, root with an empty password (socket and
// TCP), and Database with User/Password for both 'User'@'localhost' (socket
// clients) and 'User'@'127.0.0.1' (TCP clients, as --skip-name-resolve
// makes these distinct).
type MariaDB struct {
	Dir      string
	Socket   string // unix socket path
	Port     int    // TCP port on 127.0.0.1
	Database string
	User     string
	Password string
	// DSN and SocketDSN are go-sql-driver/mysql DSNs for User over TCP and
	// over the socket. With TLS, register a tls.Config (CA.ClientConfig) and
	// append "?tls=<name>" to DSN.
	DSN, SocketDSN string
	ErrorLog       string // mariadbd's --log-error file

	mu   sync.Mutex
	proc *proc
	argv []string
}

// StartMariaDB initialises a datadir with mariadb-install-db, starts
// mariadbd, creates the database and user, and returns once the server
// answers. Stop runs at cleanup.
//
// The datadir goes on /dev/shm when that is a roomy tmpfs: mariadb-install-db
// issues ≈1000 fdatasyncs, which took 1.9–3.4 s on this machine's disk under
// load and 0.9 s on tmpfs.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	Require(t, "mariadbd", "mariadb-install-db", "mariadb")
	if opts.Database == "" {
		opts.Database = "authd"
	}
	if opts.User == "" {
		opts.User = "authd"
	}
	if opts.Password == "" {
		opts.Password = "authdpw"
	}
	if opts.RequireTLS && opts.TLS == nil {
		t.Fatalf("testenv: MariaDBOptions.RequireTLS needs TLS")
	}
	dir := Dir(t)
	m := &MariaDB{
		Dir:      dir,
		Socket:   filepath.Join(dir, "mysqld.sock"),
		Port:     FreePort(t),
		Database: opts.Database,
		User:     opts.User,
		Password: opts.Password,
		ErrorLog: filepath.Join(dir, "error.log"),
	}
	m.DSN = fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s", m.User, m.Password, m.Port, m.Database)
	m.SocketDSN = fmt.Sprintf("%s:%s@unix(%s)/%s", m.User, m.Password, m.Socket, m.Database)

	// --no-defaults must come first, or /etc/mysql/my.cnf is read. As root,
	// --user=root is mandatory (mariadbd refuses to run as root otherwise);
	// as another user it would only warn, so leave it out.
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	datadir := filepath.Join(memDir(t, dir), "data")
	// A private tmpdir: concurrent mariadb-install-db runs sharing /tmp for
	// their temporary tables crash now and then (signal 11, "Unknown table
	// mysql.tmp_user_sys").
	tmpdir := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmpdir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	install := append([]string{mustBin(t, "mariadb-install-db"), "--no-defaults"}, asRoot...)
	install = append(install, "--datadir="+datadir, "--tmpdir="+tmpdir,
		"--auth-root-authentication-method=normal", "--skip-test-db",
		"--skip-name-resolve", "--innodb-log-file-size=16M")
	run(t, cleanEnv(), "", install...)

	m.argv = append([]string{mustBin(t, "mariadbd"), "--no-defaults"}, asRoot...)
	m.argv = append(m.argv,
		"--datadir="+datadir,
		"--tmpdir="+tmpdir,
		"--socket="+m.Socket,
		"--port="+strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--pid-file="+filepath.Join(dir, "mysqld.pid"),
		"--log-error="+m.ErrorLog,
		// No network: reverse DNS would stall logins and change which
		// account matches.
		"--skip-name-resolve",
		"--skip-log-bin",
		"--innodb-buffer-pool-size=32M",
		"--innodb-log-file-size=16M",
		// Shutdown in 0.02 s instead of 1.9 s; the data is throwaway, and
		// crash recovery on Restart is what an outage test wants anyway.
		"--innodb-fast-shutdown=3",
		"--skip-innodb-buffer-pool-dump-at-shutdown",
		"--skip-innodb-buffer-pool-load-at-startup",
		// Commits reach the OS at once (so they survive Kill) but are not
		// fsynced: durability against power loss is not under test.
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=200",
	)
	if opts.TLS != nil {
		cert, key := opts.TLS.Issue(t, dir, "server", "127.0.0.1", "localhost")
		m.argv = append(m.argv, "--ssl-ca="+opts.TLS.CertFile, "--ssl-cert="+cert, "--ssl-key="+key)
	}
	if opts.RequireTLS {
		m.argv = append(m.argv, "--require-secure-transport=ON")
	}
	logOnFailure(t, m.ErrorLog, filepath.Join(dir, "mariadbd.stdout"))
	t.Cleanup(m.Stop)
	m.start(t)

	q := func(s string) string {
		return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
	}
	db := "`" + strings.ReplaceAll(m.Database, "`", "``") + "`"
	var sql strings.Builder
	fmt.Fprintf(&sql, "CREATE DATABASE %s;\n", db)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		fmt.Fprintf(&sql, "CREATE USER %s@%s IDENTIFIED BY %s;\n", q(m.User), q(host), q(m.Password))
		fmt.Fprintf(&sql, "GRANT SELECT, INSERT, UPDATE, DELETE ON %s.* TO %s@%s;\n", db, q(m.User), q(host))
	}
	m.Exec(t, sql.String())
	return m
}

// start launches mariadbd with m.argv and waits until it greets a client on
// the socket. mariadbd opens its listeners only after storage engines and
// grant tables are up (and deletes a stale socket file first), so a greeting
// means ready.
func (m *MariaDB) start(t testing.TB) {
	t.Helper()
	stdout := filepath.Join(m.Dir, "mariadbd.stdout")
	p, err := startProc(stdout, cleanEnv(), false, m.argv...)
	if err != nil {
		t.Fatalf("testenv: starting mariadbd: %v", err)
	}
	m.proc = p
	waitReady(t, "mariadbd", p, 30*time.Second, func(ctx context.Context) error {
		return mysqlGreeting(ctx, m.Socket)
	}, m.ErrorLog, stdout)
}

// Exec runs sql (any number of statements) as root over the socket with the
// mariadb CLI and returns its output: tab-separated rows without a header.
// LOAD DATA LOCAL INFILE is allowed, for bulk loads. It fails the test on an
// error.
func (m *MariaDB) Exec(t testing.TB, sql string) string {
	t.Helper()
	return run(t, cleanEnv(), sql, mustBin(t, "mariadb"), "--no-defaults",
		"--socket="+m.Socket, "-uroot", "--batch", "--skip-column-names", "--local-infile=1")
}

// Kill stops mariadbd with SIGKILL, as an outage, and waits for it. The
// datadir and port are kept for Restart.
func (m *MariaDB) Kill() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc.stop(syscall.SIGKILL, time.Second)
}

// Restart starts mariadbd again on the same datadir, socket and port (after
// stopping it if it still runs) and waits until it is ready; InnoDB crash
// recovery after Kill takes a few tens of ms with these small logs.
func (m *MariaDB) Restart(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc.stop(syscall.SIGTERM, 10*time.Second)
	m.start(t)
}

// Stop stops mariadbd (SIGTERM; 0.02 s with --innodb-fast-shutdown=3) and
// waits. It is idempotent and also runs at cleanup.
func (m *MariaDB) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.proc.stop(syscall.SIGTERM, 10*time.Second)
}

// mysqlGreeting reads the server's initial handshake packet: a 4-byte header,
// then protocol version 10 (an 0xff error packet means "not now").
func mysqlGreeting(ctx context.Context, sock string) error {
	c, err := dialProbe(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	var b [5]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[4] != 10 {
		return fmt.Errorf("mariadbd greeting starts with 0x%02x, want protocol 10", b[4])
	}
	return nil
}

// memDir returns a new directory on /dev/shm if it is a tmpfs with at least
// 512 MiB free (Docker's default 64 MiB would not hold two datadirs), removed
// at cleanup; otherwise fallback.
func memDir(t testing.TB, fallback string) string {
	t.Helper()
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic ||
		st.Bavail*uint64(st.Bsize) < 512<<20 {
		return fallback
	}
	d, err := os.MkdirTemp("/dev/shm", "authd-testenv-")
	if err != nil {
		return fallback
	}
	reaperNote('d', d)
	t.Cleanup(func() {
		os.RemoveAll(d)
		reaperNote('u', d)
	})
	return d
}
