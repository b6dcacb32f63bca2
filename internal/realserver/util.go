package realserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrUnavailable is matched (errors.Is) by the errors that say a server
// cannot run on this machine at all — a binary, a system user or root is
// missing — as opposed to a server that was tried and failed.
var ErrUnavailable = errors.New("not available on this machine")

type unavailableError struct{ msg string }

func (e *unavailableError) Error() string        { return e.msg }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unavailable returns an error matching ErrUnavailable with the message
// format and args make.
func Unavailable(format string, args ...any) error {
	return &unavailableError{msg: fmt.Sprintf(format, args...)}
}

// LookBin finds a binary in PATH and then in /usr/sbin, /sbin and /usr/bin
// (a non-root or non-login PATH may lack the sbin directories); an
// absolute path is checked as is. A missing binary is ErrUnavailable.
func LookBin(name string) (string, error) {
	if filepath.IsAbs(name) {
		if isExecutable(name) {
			return name, nil
		}
		return "", Unavailable("%s: not installed", name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", Unavailable("%s: not installed", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lookBins looks up every name and says which are missing, all at once.
func lookBins(names ...string) ([]string, error) {
	paths := make([]string, len(names))
	var missing []string
	for i, n := range names {
		p, err := LookBin(n)
		if err != nil {
			missing = append(missing, n)
		}
		paths[i] = p
	}
	if len(missing) > 0 {
		return nil, Unavailable("missing binaries: %s", strings.Join(missing, ", "))
	}
	return paths, nil
}

// needRoot is for Dovecot: its master switches to the dovecot and
// dovenull users, which only root can do.
func needRoot(what string) error {
	if os.Geteuid() != 0 {
		return Unavailable("%s needs root (it switches to its service users)", what)
	}
	return nil
}

// needUsers checks that the system users a server switches to exist; the
// packages create them, so a missing one means a broken install.
func needUsers(names ...string) error {
	for _, u := range names {
		if _, err := user.Lookup(u); err != nil {
			return Unavailable("user %q: %v", u, err)
		}
	}
	return nil
}

// CleanEnv is the environment for every child: this process's own, minus
// the variables that would make a server or client use something other
// than the private instance (MYSQL_*, MARIADB_*, LDAP*, PG* for libpq,
// MAIL_CONFIG, MAIL_DEBUG), plus extra.
func CleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MYSQL_"), strings.HasPrefix(k, "MARIADB_"),
			strings.HasPrefix(k, "LDAP"), strings.HasPrefix(k, "PG"), k == "MAIL_CONFIG", k == "MAIL_DEBUG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// WriteFile writes a file the servers' unprivileged users can read: 0644
// whatever the umask.
func WriteFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}

// Mkdirs creates directories with mode 0755 whatever the umask.
func Mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// binds 127.0.0.1:0, reads the port the kernel chose and closes the
// listener. The kernel picks ports at random, so concurrent users rarely
// collide.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// RunCmd runs a helper (an installer, a loader, a client) with env and
// stdin and returns its combined output; a failure's error carries the
// command line and the output.
func RunCmd(ctx context.Context, env []string, stdin string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// Tails returns the last 40 lines of each log file, for error messages.
func Tails(paths ...string) string {
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(&b, "\n--- %s (tail) ---\n%s", p, strings.Join(lines, "\n"))
	}
	return b.String()
}

// DialProbe connects to a unix socket path (one starting with "/") or a
// host:port, with ctx's deadline on the connection: the dial of a
// readiness probe.
func DialProbe(ctx context.Context, addr string) (net.Conn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	return c, nil
}
