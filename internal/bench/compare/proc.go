package compare

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one server process started by the harness: a direct child, the
// leader of its own process group (so Dovecot's children are stopped with
// it), waited for by a goroutine so it never lingers as a zombie
// (realservers.md §7).
type proc struct {
	name     string
	cmd      *exec.Cmd
	log      string
	done     chan struct{}
	err      error
	stopOnce sync.Once
}

// startProc starts argv with stdout and stderr appended to logPath.
// Pdeathsig asks the kernel to SIGTERM the server if this process dies
// without stopping it; it is kept by servers that stay root (Dovecot's
// master, mariadbd --user=root, slapd, authd), and Dovecot's children exit
// when their master goes.
func startProc(name, logPath string, env []string, argv ...string) (*proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to grace, then
// SIGKILLs the group. Signalling the group stops Dovecot in ≈10 ms instead
// of the 1.1 s its master takes alone.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() {
		pg := p.pid()
		if !p.exited() {
			_ = syscall.Kill(pg, syscall.SIGTERM)
			_ = syscall.Kill(-pg, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(grace):
				_ = syscall.Kill(-pg, syscall.SIGKILL)
				_ = syscall.Kill(pg, syscall.SIGKILL)
				<-p.done
			}
		}
		// Stragglers keep the group id, so it cannot have been reused.
		_ = syscall.Kill(-pg, syscall.SIGKILL)
	})
}

// waitReady polls probe until it succeeds, the process exits, or timeout.
func waitReady(ctx context.Context, p *proc, timeout time.Duration, probe func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	for {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up (%v)%s", p.name, p.err, tail(p.log, 20))
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v%s", p.name, timeout, err, tail(p.log, 20))
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// tail returns the last n lines of a log, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n--- " + path + " ---\n" + strings.Join(lines, "\n")
}

// runCmd runs a helper (install, load, CLI) and fails with its output.
func runCmd(ctx context.Context, env []string, stdin string, argv ...string) (string, error) {
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

// lookBin finds a binary in PATH or the sbin directories (a non-login
// root PATH may lack them).
func lookBin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not installed", name)
}

// cleanEnv drops variables that would point clients or servers at
// anything but the private instances.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MYSQL_"), strings.HasPrefix(k, "MARIADB_"),
			strings.HasPrefix(k, "LDAP"), k == "MAIL_CONFIG", k == "MAIL_DEBUG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeFile writes a file the servers' unprivileged users can read.
func writeFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}

func mkdirs(dirs ...string) error {
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

// cpuTicks is the user+system CPU time, in clock ticks, of every live
// process in process group pgid (pgid 0: this process only).
func cpuTicks(pgid int) (int64, error) {
	if pgid == 0 {
		return statTicks("/proc/self/stat", -1)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		t, err := statTicks(filepath.Join("/proc", e.Name(), "stat"), pgid)
		if err == nil {
			total += t
		}
	}
	return total, nil
}

var errOtherGroup = errors.New("other process group")

// statTicks parses utime+stime from a /proc/PID/stat file, if the process
// is in group pgid (any group when pgid < 0).
func statTicks(path string, pgid int) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	if pgid >= 0 {
		g, _ := strconv.Atoi(f[2])
		if g != pgid {
			return 0, errOtherGroup
		}
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

// groupPIDs lists the live processes of group pgid whose command name is in
// names (all of them when names is empty).
func groupPIDs(pgid int, names ...string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open {
			continue
		}
		comm := string(b[open+1 : close])
		f := strings.Fields(string(b[close+1:]))
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g != pgid {
			continue
		}
		if len(names) == 0 {
			out = append(out, pid)
			continue
		}
		for _, n := range names {
			if comm == n {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// machineBusyTicks is the CPU time all processes spent, from /proc/stat's
// aggregate line (user, nice, system, irq, softirq, steal): subtracting the
// measured groups leaves what other processes on a shared machine took.
func machineBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var total int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		total += n
	}
	return total, nil
}
