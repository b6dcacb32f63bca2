package realserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// TLSFiles are PEM files for a server's TLS listener.
type TLSFiles struct {
	CA   string // the CA certificate clients are issued from (and checked against)
	Cert string // the server's certificate
	Key  string // its key
}

// MariaDBOptions configures StartMariaDB. Zero values mean the defaults.
type MariaDBOptions struct {
	Instance
	Database string // created empty; default "authd"
	User     string // granted SELECT, INSERT, UPDATE, DELETE on Database; default "authd"
	Password string // User's password; default "authdpw"

	// TLS, when set, makes mariadbd serve TLS with these files.
	TLS *TLSFiles
	// RequireTLS sets require_secure_transport, so TCP logins without TLS
	// are refused (unix socket logins still work). Needs TLS.
	RequireTLS bool

	// BufferPoolSize is innodb_buffer_pool_size; default "32M", plenty for
	// a test's rows. A benchmark wants its whole table in memory.
	BufferPoolSize string
	// MaxConnections is max_connections; default 200.
	MaxConnections int
}

// MariaDB is a private mariadbd (docs/testing.md §2): its own datadir, unix
// socket and TCP port on 127.0.0.1, root with an empty password (socket and
// TCP), and Database with User/Password for both 'User'@'localhost' (socket
// clients) and 'User'@'127.0.0.1' (TCP clients, as --skip-name-resolve
// makes these distinct). Stop takes 0.02 s (--innodb-fast-shutdown=3);
// InnoDB's crash recovery after Kill takes a Restart a few tens of ms.
type MariaDB struct {
	Dir      string
	Socket   string // unix socket path
	Port     int    // TCP port on 127.0.0.1
	Database string
	User     string
	Password string
	// DSN and SocketDSN are go-sql-driver/mysql DSNs for User over TCP and
	// over the socket. With TLS, register a tls.Config and append
	// "?tls=<name>" to DSN.
	DSN, SocketDSN string
	ErrorLog       string // mariadbd's --log-error file
	Stdout         string // its stdout and stderr

	server
	in      Instance
	scratch string // datadir parent on /dev/shm, removed by Close
	argv    []string
}

// StartMariaDB initialises a datadir with mariadb-install-db, starts
// mariadbd, creates the database and user, and returns once the server
// answers. The caller must Close it.
//
// The datadir goes on /dev/shm when that is a roomy tmpfs:
// mariadb-install-db issues ≈1000 fdatasyncs, which took 1.9–3.4 s on a
// busy disk and 0.9 s on tmpfs.
func StartMariaDB(ctx context.Context, o MariaDBOptions) (*MariaDB, error) {
	bins, err := lookBins("mariadbd", "mariadb-install-db", "mariadb")
	if err != nil {
		return nil, err
	}
	if o.RequireTLS && o.TLS == nil {
		return nil, errors.New("MariaDBOptions.RequireTLS needs TLS")
	}
	m, err := newMariaDB(o)
	if err != nil {
		return nil, err
	}
	datadir := filepath.Join(m.Dir, "data")
	if m.scratch = memDir(o.Tracker); m.scratch != "" {
		datadir = filepath.Join(m.scratch, "data")
	}
	// --no-defaults must come first, or /etc/mysql/my.cnf is read. As
	// root, --user=root is mandatory (mariadbd refuses to run as root
	// otherwise); as another user it would only warn, so leave it out.
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	// A private tmpdir: concurrent mariadb-install-db runs sharing /tmp for
	// their temporary tables crash now and then (signal 11, "Unknown table
	// mysql.tmp_user_sys").
	tmpdir := filepath.Join(m.Dir, "tmp")
	if err := Mkdirs(tmpdir); err != nil {
		m.Close()
		return nil, err
	}
	install := append([]string{bins[1], "--no-defaults"}, asRoot...)
	install = append(install, "--datadir="+datadir, "--tmpdir="+tmpdir,
		"--auth-root-authentication-method=normal", "--skip-test-db",
		"--skip-name-resolve", "--innodb-log-file-size=16M")
	if _, err := RunCmd(ctx, CleanEnv(), "", install...); err != nil {
		m.Close()
		return nil, err
	}
	m.argv = append([]string{bins[0], "--no-defaults"}, asRoot...)
	m.argv = append(m.argv, m.serverArgs(o, datadir, tmpdir)...)
	if err := m.run(ctx); err != nil {
		m.Close()
		return nil, err
	}
	if _, err := m.Exec(ctx, m.grants()); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// newMariaDB fills in the defaults, the paths and the port.
func newMariaDB(o MariaDBOptions) (*MariaDB, error) {
	if err := Mkdirs(o.Dir); err != nil {
		return nil, err
	}
	m := &MariaDB{
		Dir: o.Dir, Socket: filepath.Join(o.Dir, "mysqld.sock"),
		Database: orDefault(o.Database, "authd"), User: orDefault(o.User, "authd"), Password: orDefault(o.Password, "authdpw"),
		ErrorLog: filepath.Join(o.Dir, "error.log"), Stdout: filepath.Join(o.Dir, "mariadbd.stdout"),
		in: o.Instance, server: server{grace: 10 * time.Second},
	}
	m.launch = m.start
	port, err := o.port()
	if err != nil {
		return nil, err
	}
	m.Port = port
	m.DSN = fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s", m.User, m.Password, m.Port, m.Database)
	m.SocketDSN = fmt.Sprintf("%s:%s@unix(%s)/%s", m.User, m.Password, m.Socket, m.Database)
	return m, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (m *MariaDB) serverArgs(o MariaDBOptions, datadir, tmpdir string) []string {
	maxConns := o.MaxConnections
	if maxConns <= 0 {
		maxConns = 200
	}
	args := []string{
		"--datadir=" + datadir,
		"--tmpdir=" + tmpdir,
		"--socket=" + m.Socket,
		"--port=" + strconv.Itoa(m.Port),
		"--bind-address=127.0.0.1",
		"--pid-file=" + filepath.Join(m.Dir, "mysqld.pid"),
		"--log-error=" + m.ErrorLog,
		// No DNS: reverse lookups would stall logins and change which
		// account matches.
		"--skip-name-resolve",
		"--skip-log-bin",
		"--innodb-buffer-pool-size=" + orDefault(o.BufferPoolSize, "32M"),
		"--innodb-log-file-size=16M",
		// Shutdown in 0.02 s instead of 1.9 s; the data is throwaway, and
		// crash recovery on Restart is what an outage test wants anyway.
		"--innodb-fast-shutdown=3",
		"--skip-innodb-buffer-pool-dump-at-shutdown",
		"--skip-innodb-buffer-pool-load-at-startup",
		// Commits reach the OS at once (so they survive Kill) but are not
		// fsynced: durability against power loss is not under test.
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=" + strconv.Itoa(maxConns),
	}
	if o.TLS != nil {
		args = append(args, "--ssl-ca="+o.TLS.CA, "--ssl-cert="+o.TLS.Cert, "--ssl-key="+o.TLS.Key)
	}
	if o.RequireTLS {
		args = append(args, "--require-secure-transport=ON")
	}
	return args
}

// grants creates Database and User for socket and TCP clients.
func (m *MariaDB) grants() string {
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
	return sql.String()
}

// start launches mariadbd with m.argv and waits until it greets a client on
// the socket. mariadbd opens its listeners only after storage engines and
// grant tables are up (and deletes a stale socket file first), so a
// greeting means ready.
func (m *MariaDB) start(ctx context.Context) (*Proc, error) {
	return startAndWait(ctx, m.in, "mariadbd", m.Stdout, 30*time.Second, func(ctx context.Context) error {
		return mysqlGreeting(ctx, m.Socket)
	}, m.argv, m.ErrorLog)
}

// Exec runs sql (any number of statements) as root over the socket with the
// mariadb CLI and returns its output: tab-separated rows without a header.
// LOAD DATA LOCAL INFILE is allowed, for bulk loads.
func (m *MariaDB) Exec(ctx context.Context, sql string) (string, error) {
	bin, err := LookBin("mariadb")
	if err != nil {
		return "", err
	}
	return RunCmd(ctx, CleanEnv(), sql, bin, "--no-defaults",
		"--socket="+m.Socket, "-uroot", "--batch", "--skip-column-names", "--local-infile=1")
}

// Close stops mariadbd and removes its datadir when it lives outside Dir.
// It is idempotent.
func (m *MariaDB) Close() {
	m.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.scratch != "" {
		_ = os.RemoveAll(m.scratch)
		if m.in.Tracker != nil {
			m.in.Tracker.Dir(m.scratch, false)
		}
		m.scratch = ""
	}
}

// mysqlGreeting reads the server's initial handshake packet: a 4-byte
// header, then protocol version 10 (an 0xff error packet means "not now").
func mysqlGreeting(ctx context.Context, sock string) error {
	c, err := DialProbe(ctx, sock)
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
// 512 MiB free (Docker's default 64 MiB would not hold two datadirs), else
// "".
func memDir(tr Tracker) string {
	if !shmHasRoom(512 << 20) {
		return ""
	}
	d, err := os.MkdirTemp("/dev/shm", "authd-realserver-")
	if err != nil {
		return ""
	}
	if tr != nil {
		tr.Dir(d, true)
	}
	return d
}

// shmHasRoom reports whether /dev/shm is a tmpfs with at least free bytes
// available.
func shmHasRoom(free uint64) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	return syscall.Statfs("/dev/shm", &st) == nil && st.Type == tmpfsMagic && st.Bavail*uint64(st.Bsize) >= free
}
