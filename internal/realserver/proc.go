package realserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Tracker is told about every process group and scratch directory a
// launcher creates and removes, so that a watchdog that outlives this
// process can clean up after a crash (internal/testenv's reaper is one).
type Tracker interface {
	// Group reports a server's process group: live when it starts, not
	// live once it is stopped and reaped.
	Group(pgid int, live bool)
	// Dir reports a scratch directory outside Instance.Dir (MariaDB's
	// datadir on /dev/shm): live when made, not live once removed.
	Dir(path string, live bool)
	// Mount reports a Chroot's mount point: live when made; not live once
	// everything at and below it is unmounted and it is removed. A
	// watchdog detaches what is below it (umount -l) and then removes the
	// empty directory, never recursively.
	Mount(path string, live bool)
}

// Instance is what every launcher needs besides its own server's options.
type Instance struct {
	// Dir is the instance directory: configuration, logs, sockets and data
	// go there. It is created (mode 0755) when missing; the caller removes
	// it. Dovecot's unprivileged users must be able to traverse every
	// directory above it, and socket paths below it must fit in 108 bytes.
	Dir string
	// FreePort returns a free loopback TCP port; nil means FreePort.
	FreePort func() (int, error)
	// Tracker, if set, learns of every process group and scratch directory.
	Tracker Tracker
	// ParentDeath asks the kernel to SIGTERM the server if this process
	// dies without stopping it. Only servers that stay root keep the
	// request (Dovecot's master, mariadbd --user=root, slapd, authd): a
	// process that changes its uid loses it (prctl(2)), and Go ties it to
	// the OS thread that forked the child (Go issue 27505). A backstop for
	// a command; tests use a Tracker.
	ParentDeath bool
}

func (in Instance) port() (int, error) {
	if in.FreePort != nil {
		return in.FreePort()
	}
	return FreePort()
}

func (in Instance) procOptions(name, log string) ProcOptions {
	return ProcOptions{Name: name, Log: log, ParentDeath: in.ParentDeath, Tracker: in.Tracker}
}

// ProcOptions configures StartProc.
type ProcOptions struct {
	Name string // for messages
	Log  string // stdout and stderr are appended to this file
	// Env is the child's environment; nil means CleanEnv().
	Env []string
	// OwnSession is for servers that call setsid themselves (Postfix's
	// master): setsid fails with EPERM in a process group leader, and the
	// new session gives the same group anyway.
	OwnSession  bool
	ParentDeath bool    // see Instance.ParentDeath
	Tracker     Tracker // see Instance.Tracker
	// Chroot, if set, is the directory the child chroot(2)s to before it
	// executes argv[0] (a path inside it), with "/" as its working
	// directory: a Chroot's Root.
	Chroot string
	// Credential, when set, runs the process as that user (PostgreSQL
	// refuses to run as root). Only root can use it.
	Credential *syscall.Credential
}

// Proc is one server process: a direct child, the leader of its own
// process group (so that everything it forks, such as Dovecot's service
// processes, is stopped with it), waited for by a goroutine.
type Proc struct {
	name     string
	log      string
	cmd      *exec.Cmd
	done     chan struct{} // closed once Wait has returned
	err      error         // Wait's result, valid after done
	tracker  Tracker
	stopOnce sync.Once
}

// StartProc starts argv with stdout and stderr appended to o.Log.
func StartProc(o ProcOptions, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("realserver: StartProc without a command")
	}
	lf, err := os.OpenFile(o.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = o.Env
	if cmd.Env == nil {
		cmd.Env = CleanEnv()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !o.OwnSession, Credential: o.Credential}
	if o.Chroot != "" {
		cmd.SysProcAttr.Chroot, cmd.Dir = o.Chroot, "/"
	}
	if o.ParentDeath {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", o.Name, err)
	}
	p := &Proc{name: o.Name, log: o.Log, cmd: cmd, done: make(chan struct{}), tracker: o.Tracker}
	if p.tracker != nil {
		p.tracker.Group(p.PID(), true)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the server's process id, which is also its process group's id
// (unless OwnSession: then only once the server has called setsid).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited (and been reaped).
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig to the process group, waits for the leader (SIGKILL after
// grace), then SIGKILLs whatever is left of the group. Signalling the group
// rather than only the leader is what makes Dovecot stop in ≈10 ms instead
// of 1.1 s: its master otherwise waits for its children. Only the first
// call acts (a second group kill, long after the first, could hit a reused
// id); a nil Proc is ignored.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() { p.stopGroup(sig, grace) })
}

func (p *Proc) stopGroup(sig syscall.Signal, grace time.Duration) {
	pgid := p.PID()
	if !p.Exited() {
		// The leader itself too: a Postfix master that has not yet called
		// setsid does not lead a group.
		_ = syscall.Kill(pgid, sig)
		_ = syscall.Kill(-pgid, sig)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-t.C:
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
		t.Stop()
	}
	// The leader is reaped; stragglers keep the group id alive, so it
	// cannot have been reused by an unrelated process.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if p.tracker != nil {
		p.tracker.Group(pgid, false)
	}
}

// WaitReady polls probe until it succeeds, the process exits, ctx ends or
// timeout passes. The errors carry the tails of logs (the process's own
// log always), so that a failed start explains itself. It does not stop
// the process.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration, probe func(context.Context) error, logs ...string) error {
	deadline := time.Now().Add(timeout)
	delay := 5 * time.Millisecond
	logs = append([]string{p.log}, logs...)
	for {
		if p.Exited() {
			return fmt.Errorf("%s exited during start-up (%v)%s", p.name, p.err, Tails(logs...))
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %w", p.name, ctx.Err())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v%s", p.name, timeout, err, Tails(logs...))
		}
		if !sleep(ctx, delay) {
			return fmt.Errorf("%s not ready: %w", p.name, ctx.Err())
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// sleep waits for d or ctx, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// server is a launcher's running process and what every launcher offers
// on it; each server type embeds one.
type server struct {
	mu    sync.Mutex
	proc  *Proc
	grace time.Duration // from Stop's signal to its SIGKILL
	// stopSig is the signal that asks the server to stop; 0 means
	// SIGTERM (PostgreSQL wants SIGINT: its SIGTERM waits for clients).
	stopSig syscall.Signal
	// launch starts the process and waits until it is ready; Restart runs
	// it again.
	launch func(context.Context) (*Proc, error)
}

// run starts the process (the first time, or again).
func (s *server) run(ctx context.Context) error {
	p, err := s.launch(ctx)
	if err != nil {
		return err
	}
	s.proc = p
	return nil
}

// PID is the server's process id, which is also the id of its process
// group; 0 before it started.
func (s *server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.PID()
}

// Kill stops the server with SIGKILL, as an outage, and waits for it. Its
// data, sockets and ports are kept for Restart.
func (s *server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.Stop(syscall.SIGKILL, time.Second)
}

// Restart starts the server again on the same data, sockets and ports
// (after stopping it if it still runs) and waits until it is ready.
func (s *server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.Stop(s.stopSignal(), s.grace)
	return s.run(ctx)
}

// Stop stops the server — SIGTERM to its process group, SIGKILL if it has
// not exited within a grace period — and waits. It is idempotent; Restart
// starts it again.
func (s *server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.proc.Stop(s.stopSignal(), s.grace)
}

func (s *server) stopSignal() syscall.Signal {
	if s.stopSig == 0 {
		return syscall.SIGTERM
	}
	return s.stopSig
}

// startAndWait starts argv as in's server name, logging to log, and waits
// for probe; on failure the process is stopped again.
func startAndWait(ctx context.Context, in Instance, name, log string, timeout time.Duration,
	probe func(context.Context) error, argv []string, logs ...string) (*Proc, error) {
	p, err := StartProc(in.procOptions(name, log), argv...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReady(ctx, timeout, probe, logs...); err != nil {
		p.Stop(syscall.SIGKILL, time.Second)
		return nil, err
	}
	return p, nil
}
