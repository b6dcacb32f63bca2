package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/authd-project/authd/backends/checkpassword"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/testenv"
)

// TestMain lets the test binary act as the authd binary: tests start it
// as a child process (with AUTHD_TEST_MAIN=1) so that signals, sockets and
// exit codes are exercised for real. As a test binary it fails when a
// goroutine outlives the tests (docs/architecture.md, house rule 9).
func TestMain(m *testing.M) {
	// The checkpassword driver runs "<this binary> checkpassword-reply"
	// with a clean environment (backends/checkpassword).
	if len(os.Args) == 2 && os.Args[1] == checkpassword.ReplyCommand {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	if os.Getenv("AUTHD_TEST_MAIN") == "1" {
		if n := os.Getenv("AUTHD_TEST_NOFILE"); n != "" {
			// Both limits: Go raises the soft one to the hard one at
			// start, so lowering only the soft one would not stick.
			lim, err := strconv.ParseUint(n, 10, 64)
			if err == nil {
				err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim, Max: lim})
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "AUTHD_TEST_NOFILE:", err)
				os.Exit(70)
			}
		}
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// proc is a running authd child process.
type proc struct {
	cmd    *exec.Cmd
	dir    string
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAuthd writes conf into a fresh directory (as authd.conf, with
// $DIR replaced by that directory) and starts authd on it. It waits until
// the socket waitSock (relative to the directory) completes a handshake.
func startAuthd(t *testing.T, conf string, waitSock string, files map[string]string) *proc {
	t.Helper()
	dir := testenv.Dir(t)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.ReplaceAll(body, "$DIR", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(dir, "authd.conf")
	if err := os.WriteFile(confPath, []byte(strings.ReplaceAll(conf, "$DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return startAuthdArgs(t, dir, waitSock, "serve", "-c", confPath)
}

func startAuthdArgs(t *testing.T, dir, waitSock string, args ...string) *proc {
	t.Helper()
	return startAuthdEnv(t, dir, waitSock, nil, args...)
}

// startAuthdEnv is startAuthdArgs with extra environment variables
// (AUTHD_TEST_NOFILE=N starts authd with at most N open files).
func startAuthdEnv(t *testing.T, dir, waitSock string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{dir: dir, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(append(os.Environ(), "AUTHD_TEST_MAIN=1"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("authd stderr:\n%s", p.stderr.String())
		}
	})
	sock := filepath.Join(dir, waitSock)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := dovecot.DialAuth(ctx, sock)
		cancel()
		if err == nil {
			c.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("authd exited early (%v):\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("authd did not answer on %s: %v\n%s", sock, err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("authd did not stop within 30 s of SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) path(name string) string { return filepath.Join(p.dir, name) }

// authdTest runs `authd test` in-process.
func authdTest(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"test"}, args...), strings.NewReader(""), &out, &errb)
	return out.String() + errb.String(), code
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q does not contain %q", s, sub)
	}
}

// doveadmFields parses `doveadm user` output ("field<spaces>value" lines).
func doveadmFields(out string) map[string]string {
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "\t"); ok {
			got[k] = strings.TrimSpace(v)
		} else if f := strings.Fields(line); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	return got
}

// mustHaveFields checks named fields of `doveadm user` output exactly.
func mustHaveFields(t *testing.T, out string, want map[string]string) {
	t.Helper()
	got := doveadmFields(out)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("doveadm user: %s = %q, want %q\n%s", k, got[k], v, out)
		}
	}
}

var _ = fmt.Sprintf
