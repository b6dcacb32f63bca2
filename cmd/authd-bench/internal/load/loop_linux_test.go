package load

import (
	"bufio"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLoopIdlesAfterHangUp: a connection whose server has hung up stays
// readable (end of file) for good; the event loop must stop watching it
// rather than wake for it again and again. A run of a second against a
// server that hangs up at once must use a small part of that second's
// CPU time: a loop that never waits again uses all of it.
func TestLoopIdlesAfterHangUp(t *testing.T) {
	// It hangs up once the client's handshake is in, before any request.
	sock := serveUnix(t, func(c net.Conn) {
		c.Write([]byte(clientHandshake))
		sc := bufio.NewScanner(c)
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "CPID\t") {
		}
	})
	users, _ := GenerateUsers(10, "", "")
	before := cpuTime(t)
	res, err := Run(t.Context(), Config{
		Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(), Conns: 2, Depth: 10,
		Rate: 100, Duration: time.Second, Timeout: 200 * time.Millisecond, Users: users,
	})
	if err != nil {
		t.Fatal(err)
	}
	if used := cpuTime(t) - before; used > 400*time.Millisecond {
		t.Errorf("the run used %v of CPU in about a second: the loop does not wait", used)
	}
	if res.OK != 0 || res.Errors < 90 || len(res.ErrorSamples) == 0 {
		t.Errorf("%d OK, %d errors, samples %q; want none OK, about 100 errors and their cause", res.OK, res.Errors, res.ErrorSamples)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
