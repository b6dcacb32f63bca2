package realserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PostgresOptions configures StartPostgres. Zero values mean the defaults.
type PostgresOptions struct {
	Instance
	Database string // created empty; default "authd"
	User     string // may log in with Password; SELECT, INSERT, UPDATE, DELETE on the tables of Database; default "authd"
	Password string // default "authdpw"

	// TLS, when set, turns ssl on with these files (TCP only: PostgreSQL
	// never uses TLS on its unix socket).
	TLS *TLSFiles
	// HBA lines go before the defaults of pg_hba.conf ("local all all
	// trust", then password logins over TCP from 127.0.0.1), so a test can
	// refuse a user without TLS: "hostnossl all tlsonly 127.0.0.1/32 reject".
	HBA []string
	// Port, when set, is the port number instead of a free one; with
	// SocketOnly two clusters can share a number (their sockets differ by
	// directory), as a failover test whose connect string has one port=
	// for every host needs.
	Port int
	// SocketOnly: no TCP listener, only the unix socket.
	SocketOnly bool
	// MaxConnections is max_connections; default 100.
	MaxConnections int
	// SharedBuffers is shared_buffers; default "32MB".
	SharedBuffers string
}

// Postgres is a private PostgreSQL cluster (docs/testing.md §8.3): its own
// data directory (on /dev/shm when roomy), a unix socket in SocketDir and a
// TCP port on 127.0.0.1, running as the postgres system user when started
// by root (the server refuses root) and as this process's user otherwise.
// The superuser is "postgres" (trust over the socket); User logs in with
// Password over TCP (scram-sha-256) and over the socket.
type Postgres struct {
	Dir       string
	SocketDir string // the directory of ".s.PGSQL.<Port>": libpq's and Dovecot's host=
	Port      int
	Database  string
	User      string
	Password  string
	Log       string // the server's stderr

	server
	in      Instance
	bin     string // the directory of initdb, postgres and psql
	datadir string
	scratch string
	cred    *syscall.Credential
	argv    []string
}

// StartPostgres runs initdb, starts postgres, creates the user and the
// database, and returns once the server accepts a login. The caller must
// Close it.
func StartPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	p, err := newPostgres(o, bin)
	if err != nil {
		return nil, err
	}
	if err := p.initdb(ctx, o); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.run(ctx); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.createUser(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// postgresBin is the newest /usr/lib/postgresql/<version>/bin holding
// initdb, postgres and psql (Debian keeps them out of PATH).
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) && isExecutable(filepath.Join(d, "psql")) {
			return d, nil
		}
	}
	return "", Unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// newPostgres fills in the defaults, the paths, the port and the user the
// server runs as, and makes its directories that user's.
func newPostgres(o PostgresOptions, bin string) (*Postgres, error) {
	if err := Mkdirs(o.Dir); err != nil {
		return nil, err
	}
	p := &Postgres{
		Dir: o.Dir, SocketDir: filepath.Join(o.Dir, "sock"), Log: filepath.Join(o.Dir, "postgres.log"),
		Database: orDefault(o.Database, "authd"), User: orDefault(o.User, "authd"), Password: orDefault(o.Password, "authdpw"),
		in: o.Instance, bin: bin, server: server{grace: 10 * time.Second, stopSig: syscall.SIGINT},
	}
	p.launch = p.start
	p.Port = o.Port
	if p.Port == 0 {
		port, err := o.port()
		if err != nil {
			return nil, err
		}
		p.Port = port
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, Unavailable("user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	p.datadir = filepath.Join(o.Dir, "data")
	if p.scratch = memDir(o.Tracker); p.scratch != "" {
		p.datadir = filepath.Join(p.scratch, "data")
	}
	for _, d := range []string{p.SocketDir, p.scratch, filepath.Join(o.Dir, "tls")} {
		if d == "" {
			continue
		}
		if err := Mkdirs(d); err != nil {
			return nil, err
		}
		if err := p.chown(d); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// chown gives path to the user the server runs as.
func (p *Postgres) chown(path string) error {
	if p.cred == nil {
		return nil
	}
	return os.Chown(path, int(p.cred.Uid), int(p.cred.Gid))
}

// runAs runs a PostgreSQL tool as the server's user.
func (p *Postgres) runAs(ctx context.Context, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Dir = CleanEnv(), p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// initdb makes the cluster (no fsyncs: the data is throwaway) and writes
// its pg_hba.conf and TLS files.
func (p *Postgres) initdb(ctx context.Context, o PostgresOptions) error {
	err := p.runAs(ctx, filepath.Join(p.bin, "initdb"), "--no-sync", "-D", p.datadir, "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256")
	if err != nil {
		return err
	}
	hba := strings.Join(append(append([]string{}, o.HBA...),
		"local all all trust",
		"host all all 127.0.0.1/32 scram-sha-256"), "\n") + "\n"
	if err := p.writeOwned(filepath.Join(p.datadir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	maxConns := o.MaxConnections
	if maxConns <= 0 {
		maxConns = 100
	}
	listen := "127.0.0.1"
	if o.SocketOnly {
		listen = ""
	}
	p.argv = []string{filepath.Join(p.bin, "postgres"), "-D", p.datadir, "-k", p.SocketDir,
		"-p", strconv.Itoa(p.Port), "-c", "listen_addresses=" + listen,
		// Commits are written but not fsynced: durability against power
		// loss is not under test, and Kill loses nothing that reached the
		// OS (synchronous_commit stays on: it would lose the last commits).
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=" + strconv.Itoa(maxConns), "-c", "shared_buffers=" + orDefault(o.SharedBuffers, "32MB"),
		"-c", "logging_collector=off", "-c", "log_min_messages=warning"}
	if o.TLS != nil {
		tls, err := p.tlsFiles(o.TLS)
		if err != nil {
			return err
		}
		p.argv = append(p.argv, tls...)
	}
	return nil
}

// tlsFiles copies the server's certificate and key where the server's
// user owns them (it refuses a key others can read) and returns the
// settings.
func (p *Postgres) tlsFiles(t *TLSFiles) ([]string, error) {
	dir := filepath.Join(p.Dir, "tls")
	var out []string
	for _, f := range []struct{ src, name, setting string }{
		{t.Cert, "server.crt", "ssl_cert_file"}, {t.Key, "server.key", "ssl_key_file"}, {t.CA, "ca.crt", "ssl_ca_file"},
	} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, f.name)
		if err := p.writeOwned(dst, data, 0o600); err != nil {
			return nil, err
		}
		out = append(out, "-c", f.setting+"="+dst)
	}
	return append(out, "-c", "ssl=on"), nil
}

func (p *Postgres) writeOwned(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	return p.chown(path)
}

// start launches postgres with p.argv and waits until a login as the
// superuser over the socket reaches ReadyForQuery (the server answers
// "starting up" errors until then).
func (p *Postgres) start(ctx context.Context) (*Proc, error) {
	if err := p.waitGone(ctx, 10*time.Second); err != nil {
		return nil, err
	}
	po := p.in.procOptions("postgres", p.Log)
	po.Credential = p.cred
	proc, err := StartProc(po, p.argv...)
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(p.SocketDir, ".s.PGSQL."+strconv.Itoa(p.Port))
	if err := proc.WaitReady(ctx, 30*time.Second, func(ctx context.Context) error { return pgReady(ctx, sock) }); err != nil {
		proc.Stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return proc, nil
}

// Kill stops the cluster with SIGKILL, as an outage, and waits until none
// of its processes is left. The backends are not in the postmaster's
// process group (each calls setsid), so they are found by their working
// directory, the data directory.
func (p *Postgres) Kill() {
	p.server.Kill()
	for _, pid := range p.procs() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = p.waitGone(context.Background(), 10*time.Second)
}

// waitGone waits until no process of the cluster is alive: after Kill a
// backend still attached to the old shared memory makes a new postmaster
// refuse to start ("pre-existing shared memory block").
func (p *Postgres) waitGone(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for len(p.procs()) > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres processes of %s still running after %v", p.datadir, timeout)
		}
		if !sleep(ctx, 10*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

// procs lists the live processes whose working directory is the data
// directory: the postmaster and its children (zombies have none).
func (p *Postgres) procs() []int {
	dir, err := filepath.EvalSymlinks(p.datadir)
	if err != nil {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// createUser creates User with Password and Database, and lets User read
// and write every table the superuser creates there later.
func (p *Postgres) createUser(ctx context.Context) error {
	lit := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	ident := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	if _, err := p.execIn(ctx, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s;\nCREATE DATABASE %s;\n",
		ident(p.User), lit(p.Password), ident(p.Database))); err != nil {
		return err
	}
	_, err := p.Exec(ctx, fmt.Sprintf("ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s;\n", ident(p.User)))
	return err
}

// Exec runs sql (any number of statements) in Database as the superuser
// with psql over the socket and returns its output: rows with
// tab-separated columns, no header, NULL as an empty string. It stops at
// the first error.
func (p *Postgres) Exec(ctx context.Context, sql string) (string, error) {
	return p.execIn(ctx, p.Database, sql)
}

func (p *Postgres) execIn(ctx context.Context, db, sql string) (string, error) {
	return RunCmd(ctx, CleanEnv(), sql, filepath.Join(p.bin, "psql"), "-X", "-q", "-A", "-t", "-F", "\t",
		"-v", "ON_ERROR_STOP=1", "-h", p.SocketDir, "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db, "-f", "-")
}

// Close stops the server and removes its data directory when it lives
// outside Dir. It is idempotent.
func (p *Postgres) Close() {
	p.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.scratch != "" {
		_ = os.RemoveAll(p.scratch)
		if p.in.Tracker != nil {
			p.in.Tracker.Dir(p.scratch, false)
		}
		p.scratch = ""
	}
}

// pgReady logs in as postgres over the socket with the startup message of
// protocol 3.0 and reads until ReadyForQuery; an ErrorResponse (the server
// is starting up or recovering) is "not ready".
func pgReady(ctx context.Context, sock string) error {
	c, err := DialProbe(ctx, sock)
	if err != nil {
		return err
	}
	defer c.Close()
	body := []byte{0, 3, 0, 0}
	for _, kv := range []string{"user", "postgres", "database", "postgres"} {
		body = append(append(body, kv...), 0)
	}
	body = append(body, 0)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))
	if _, err := c.Write(append(msg, body...)); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for {
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr[1:])) - 4
		if n < 0 || n > 1<<20 {
			return errors.New("postgres: malformed message")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return err
		}
		switch hdr[0] {
		case 'Z':
			_, _ = c.Write([]byte{'X', 0, 0, 0, 4}) // Terminate
			return nil
		case 'E':
			return fmt.Errorf("postgres: %s", strings.ReplaceAll(string(payload), "\x00", " "))
		}
	}
}
