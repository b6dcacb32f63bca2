package compare

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The starters below follow the recipes of realservers.md (§2 MariaDB, §3
// slapd, §4 Dovecot), which internal/testenv also implements. testenv
// needs a testing.TB, and an operator sizing a machine runs a program, not
// a test binary, so the few lines each recipe needs are repeated here
// without it.

// authServer is one auth server under test: Dovecot's auth process or
// authd, with its client and master sockets.
type authServer struct {
	name       string // "dovecot" or "authd"
	proc       *proc
	clientSock string
	masterSock string
}

// stop stops the server and waits for it.
func (s *authServer) stop() {
	if s != nil {
		s.proc.stop(10 * time.Second)
	}
}

// cpuGroup is the process group whose CPU time counts as the server's:
// Dovecot's master with its auth and auth-worker processes, or authd.
func (s *authServer) cpuGroup() int { return s.proc.pid() }

// profilePIDs are the processes perf should record: Dovecot's auth and
// auth-worker processes (not the master, which idles), or authd.
func (s *authServer) profilePIDs() []int {
	if s.name == "dovecot" {
		return groupPIDs(s.proc.pid(), "auth", "auth-worker")
	}
	return []int{s.proc.pid()}
}

// ErrDriverMissing marks a scenario authd cannot run because the passdb
// driver it needs is not built into this authd yet.
var ErrDriverMissing = errors.New("driver missing")

// dovecotPrelude is what Dovecot needs around the shared auth settings.
const dovecotPrelude = `# written by authd-bench compare
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
`

// startDovecot starts "dovecot -F -c DIR/dovecot.conf" with authConf as
// its auth settings, and returns once its auth process completes a
// client handshake (a socket file proves nothing: it outlives the process,
// realservers.md §4.5).
func startDovecot(ctx context.Context, dir, authConf string) (*authServer, error) {
	bin, err := lookBin("dovecot")
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("Dovecot needs root (its master switches to the dovecot and dovenull users)")
	}
	for _, u := range []string{"dovecot", "dovenull"} {
		if _, err := user.Lookup(u); err != nil {
			return nil, fmt.Errorf("Dovecot needs the %s user: %v", u, err)
		}
	}
	base := filepath.Join(dir, "run")
	if err := os.RemoveAll(base); err != nil {
		return nil, err
	}
	if err := mkdirs(base, filepath.Join(dir, "state")); err != nil {
		return nil, err
	}
	conf := dovecotPrelude + "\n" + authConf + fmt.Sprintf(`
# private paths (last, so they win)
instance_name = authd-bench-%[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
info_log_path = %[1]s/dovecot.log
debug_log_path = %[1]s/dovecot.log
`, dir, filepath.Base(dir))
	confPath := filepath.Join(dir, "dovecot.conf")
	if err := writeFile(confPath, []byte(conf)); err != nil {
		return nil, err
	}
	p, err := startProc("dovecot", filepath.Join(dir, "dovecot.stdout"), cleanEnv(), bin, "-F", "-c", confPath)
	if err != nil {
		return nil, err
	}
	s := &authServer{name: "dovecot", proc: p,
		clientSock: filepath.Join(base, "auth-client"), masterSock: filepath.Join(base, "auth-master")}
	if err := waitReady(ctx, p, 20*time.Second, func(ctx context.Context) error {
		return authHandshake(ctx, s.clientSock)
	}); err != nil {
		p.stop(time.Second)
		return nil, fmt.Errorf("%w%s", err, tail(filepath.Join(dir, "dovecot.log"), 20))
	}
	return s, nil
}

// startAuthd starts "authd serve -c DIR/authd.conf" with the same auth
// settings. When authd refuses the config because it has no such driver,
// the error wraps ErrDriverMissing.
func startAuthd(ctx context.Context, bin, dir, authConf string) (*authServer, error) {
	base := filepath.Join(dir, "run")
	if err := os.RemoveAll(base); err != nil {
		return nil, err
	}
	if err := mkdirs(base); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# written by authd-bench compare
base_dir = %s
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-master {
    mode = 0600
  }
}
`, base) + "\n" + authConf
	confPath := filepath.Join(dir, "authd.conf")
	if err := writeFile(confPath, []byte(conf)); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "authd.log")
	p, err := startProc("authd", logPath, cleanEnv(), bin, "serve", "-c", confPath)
	if err != nil {
		return nil, err
	}
	s := &authServer{name: "authd", proc: p,
		clientSock: filepath.Join(base, "auth-client"), masterSock: filepath.Join(base, "auth-master")}
	if err := waitReady(ctx, p, 20*time.Second, func(ctx context.Context) error {
		// Connect only after authd has logged that it started: before
		// commit ee36780 a client that connected while the daemon was
		// still wiring its sockets crashed it (the accept loop ran before
		// the listener's handler was stored), and the harness should
		// measure such builds too.
		log, _ := os.ReadFile(logPath)
		if !bytes.Contains(log, []byte("authd started")) {
			return errors.New("no \"authd started\" in its log yet")
		}
		return authHandshake(ctx, s.clientSock)
	}); err != nil {
		p.stop(time.Second)
		log, _ := os.ReadFile(logPath)
		for _, marker := range []string{"unknown passdb driver", "unknown userdb driver"} {
			if i := bytes.Index(log, []byte(marker)); i >= 0 {
				line := log[i:]
				if j := bytes.IndexByte(line, '\n'); j >= 0 {
					line = line[:j]
				}
				// slog's text handler quotes the err= value: unquote it.
				msg := strings.TrimRight(strings.TrimSpace(string(line)), `"`)
				return nil, fmt.Errorf("%w: %s", ErrDriverMissing, strings.ReplaceAll(msg, `\"`, `"`))
			}
		}
		return nil, err
	}
	return s, nil
}

// authHandshake does the client-protocol handshake and waits for DONE.
func authHandshake(ctx context.Context, sock string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "VERSION\t1\t2\nCPID\t%d\n", os.Getpid()); err != nil {
		return err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text() == "DONE" {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("connection closed before DONE")
}

// cacheFlushUser asks the master socket to drop one user's cache entries
// and returns how many there were: a cheap way to see whether an auth
// cache is really in use after a warm-up (protocol.md §2.4.5).
func cacheFlushUser(ctx context.Context, sock, user string) (int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "VERSION\t1\t1\nCACHE-FLUSH\t1\t%s\n", user); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if f[0] == "OK" && len(f) >= 3 && f[1] == "1" {
			return strconv.Atoi(f[2])
		}
		if f[0] == "FAIL" {
			return 0, fmt.Errorf("CACHE-FLUSH: %s", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("CACHE-FLUSH: connection closed")
}

// mariaDB is a private mariadbd (realservers.md §2) holding the users
// table, reachable on a unix socket.
type mariaDB struct {
	proc   *proc
	dir    string
	socket string
	shm    string // datadir parent on /dev/shm, removed at stop
}

func (m *mariaDB) stop() {
	if m == nil {
		return
	}
	m.proc.stop(10 * time.Second)
	if m.shm != "" {
		os.RemoveAll(m.shm)
	}
}

// memDir returns a new directory on /dev/shm when it is a roomy tmpfs
// (mariadb-install-db's ≈1000 fdatasyncs take seconds on a busy disk),
// else "".
func memDir() string {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic ||
		st.Bavail*uint64(st.Bsize) < 512<<20 {
		return ""
	}
	d, err := os.MkdirTemp("/dev/shm", "authd-bench-")
	if err != nil {
		return ""
	}
	return d
}

func startMariaDB(ctx context.Context, dir string) (*mariaDB, error) {
	var bins [3]string
	for i, n := range []string{"mariadbd", "mariadb-install-db", "mariadb"} {
		p, err := lookBin(n)
		if err != nil {
			return nil, err
		}
		bins[i] = p
	}
	m := &mariaDB{dir: dir, socket: filepath.Join(dir, "mysqld.sock")}
	datadir := filepath.Join(dir, "data")
	if shm := memDir(); shm != "" {
		m.shm = shm
		datadir = filepath.Join(shm, "data")
	}
	// --no-defaults first, or /etc/mysql/my.cnf is read; --user=root is
	// mandatory as root.
	var asRoot []string
	if os.Geteuid() == 0 {
		asRoot = []string{"--user=root"}
	}
	install := append([]string{bins[1], "--no-defaults"}, asRoot...)
	install = append(install, "--datadir="+datadir, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=16M")
	if _, err := runCmd(ctx, cleanEnv(), "", install...); err != nil {
		m.stop()
		return nil, err
	}
	argv := append([]string{bins[0], "--no-defaults"}, asRoot...)
	argv = append(argv,
		"--datadir="+datadir, "--socket="+m.socket, "--skip-networking",
		"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--log-error="+filepath.Join(dir, "error.log"),
		"--skip-name-resolve", "--skip-log-bin",
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M",
		"--innodb-fast-shutdown=3", "--skip-innodb-buffer-pool-dump-at-shutdown",
		"--skip-innodb-buffer-pool-load-at-startup", "--innodb-flush-log-at-trx-commit=2",
		"--max-connections=500",
	)
	p, err := startProc("mariadbd", filepath.Join(dir, "mariadbd.stdout"), cleanEnv(), argv...)
	if err != nil {
		m.stop()
		return nil, err
	}
	m.proc = p
	if err := waitReady(ctx, p, 30*time.Second, func(ctx context.Context) error {
		return mysqlGreeting(ctx, m.socket)
	}); err != nil {
		m.stop()
		return nil, fmt.Errorf("%w%s", err, tail(filepath.Join(dir, "error.log"), 20))
	}
	return m, nil
}

// exec runs SQL as root over the socket with the mariadb CLI (LOAD DATA
// LOCAL INFILE allowed).
func (m *mariaDB) exec(ctx context.Context, sql string) (string, error) {
	bin, err := lookBin("mariadb")
	if err != nil {
		return "", err
	}
	return runCmd(ctx, cleanEnv(), sql, bin, "--no-defaults", "--socket="+m.socket, "-uroot",
		"--batch", "--skip-column-names", "--local-infile=1")
}

// mysqlGreeting reads the server's handshake packet (protocol 10).
func mysqlGreeting(ctx context.Context, sock string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	var b [5]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[4] != 10 {
		return fmt.Errorf("mariadbd greeting starts with 0x%02x", b[4])
	}
	return nil
}

// slapd is a private OpenLDAP (realservers.md §3), slapd.conf with mdb.
type slapd struct {
	proc *proc
	uri  string
}

func (s *slapd) stop() {
	if s != nil {
		s.proc.stop(10 * time.Second)
	}
}

// slapdConf is the recipe's slapd.conf; the service account may read
// userPassword (search-then-verify), anonymous may bind (auth_bind).
const slapdConf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel none
password-hash {SSHA}

database mdb
maxsize 1073741824
suffix "dc=example,dc=com"
rootdn "cn=admin,dc=example,dc=com"
rootpw adminpw
directory %[1]s/db
dbnosync
index objectClass eq
index uid,mail eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by dn.exact="cn=authd,ou=services,dc=example,dc=com" read
  by * none
access to *
  by * read
`

func startSlapd(ctx context.Context, dir string, ldif []byte) (*slapd, error) {
	bin, err := lookBin("slapd")
	if err != nil {
		return nil, err
	}
	add, err := lookBin("slapadd")
	if err != nil {
		return nil, err
	}
	if err := mkdirs(filepath.Join(dir, "db")); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "slapd.conf")
	if err := writeFile(conf, fmt.Appendf(nil, slapdConf, dir)); err != nil {
		return nil, err
	}
	ldifPath := filepath.Join(dir, "data.ldif")
	if err := writeFile(ldifPath, ldif); err != nil {
		return nil, err
	}
	if _, err := runCmd(ctx, cleanEnv(), "", add, "-f", conf, "-l", ldifPath, "-q"); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &slapd{uri: fmt.Sprintf("ldap://127.0.0.1:%d", port)}
	logPath := filepath.Join(dir, "slapd.log")
	// -d 0: foreground, so the child is slapd itself.
	p, err := startProc("slapd", logPath, cleanEnv(), bin, "-f", conf, "-h", s.uri+"/", "-d", "0")
	if err != nil {
		return nil, err
	}
	s.proc = p
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitReady(ctx, p, 20*time.Second, func(ctx context.Context) error {
		return ldapAnonymousBind(ctx, addr)
	}); err != nil {
		p.stop(time.Second)
		return nil, err
	}
	return s, nil
}

// ldapAnonymousBind sends an LDAPv3 anonymous simple bind and expects
// success: slapd accepts connections only once its database is open.
func ldapAnonymousBind(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00}
	if _, err := c.Write(req); err != nil {
		return err
	}
	var resp [10]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		return err
	}
	want := []byte{0x30, 0x0c, 0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00}
	if !bytes.Equal(resp[:], want) {
		return fmt.Errorf("unexpected bind response % x", resp)
	}
	return nil
}
