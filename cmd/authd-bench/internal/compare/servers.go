package compare

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/realserver"
)

// The servers are started by internal/realserver, the same launchers the
// tests use (through internal/testenv): the recipes of docs/testing.md §2
// MariaDB, §3 slapd and §4 Dovecot, and authd from its binary. What only a
// benchmark wants is asked for with their options.

// instance is how the harness has realserver run a server in dir: as a
// command, with the kernel asked to stop the server should this process
// die without stopping it.
func instance(dir string) realserver.Instance {
	return realserver.Instance{Dir: dir, ParentDeath: true}
}

// authServer is one auth server under test: Dovecot's auth process or
// authd, with its client and master sockets.
type authServer struct {
	name       string // "dovecot" or "authd"
	pid        int    // leader of the process group whose CPU time is the server's
	clientSock string
	masterSock string
	stop       func()
}

// cpuGroup is the process group whose CPU time counts as the server's:
// Dovecot's master with its auth and auth-worker processes, or authd.
func (s *authServer) cpuGroup() int { return s.pid }

// profilePIDs are the processes perf should record: Dovecot's auth and
// auth-worker processes (not the master, which idles), or authd.
func (s *authServer) profilePIDs() []int {
	if s.name == "dovecot" {
		return groupPIDs(s.pid, "auth", "auth-worker")
	}
	return []int{s.pid}
}

// dovecotSettings are what Dovecot needs around the shared auth settings:
// the load sends PLAIN on a socket it does not mark secured.
const dovecotSettings = "disable_plaintext_auth = no\n"

// startDovecot starts a private Dovecot in dir with authConf as its auth
// settings; it is ready once its auth process completes a handshake.
func startDovecot(ctx context.Context, dir, authConf string) (*authServer, error) {
	d, err := realserver.StartDovecot(ctx, realserver.DovecotOptions{
		Instance: instance(dir), Config: dovecotSettings + authConf,
	})
	if err != nil {
		return nil, err
	}
	return &authServer{name: "dovecot", pid: d.PID(),
		clientSock: d.Socket("auth-client"), masterSock: d.Socket("auth-master"), stop: d.Stop}, nil
}

// startAuthd starts authd in dir with the same auth settings. When authd
// cannot run them at all ("authd check" refuses them: a passdb driver
// this build lacks), the error matches realserver.ErrConfigRefused.
func startAuthd(ctx context.Context, bin, dir, authConf string) (*authServer, error) {
	a, err := realserver.StartAuthd(ctx, realserver.AuthdOptions{Instance: instance(dir), Bin: bin, Config: authConf})
	if err != nil {
		return nil, err
	}
	return &authServer{name: "authd", pid: a.PID(),
		clientSock: a.Socket("auth-client"), masterSock: a.Socket("auth-master"), stop: a.Stop}, nil
}

// cacheFlushUser asks the master socket to drop one user's cache entries
// and returns how many there were: a cheap way to see whether an auth
// cache is really in use after a warm-up (docs/protocol.md §2.4.5).
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
