package realserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DefaultRootCache is where TrixieRoot keeps its Debian roots between runs.
const DefaultRootCache = "/var/cache/authd-testenv"

// DefaultDebianMirror is the mirror TrixieRoot builds from.
const DefaultDebianMirror = "http://deb.debian.org/debian"

// TrixiePackages is what a Debian 13 root contains beyond minbase: Dovecot
// 2.4 with its mail processes and every auth backend module, so that one
// cached root serves the mail-stack interop tests and differential tests
// against 2.4's own SQL and LDAP drivers.
var TrixiePackages = []string{
	"dovecot-core", "dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd",
	"dovecot-mysql", "dovecot-ldap", "dovecot-sqlite", "dovecot-pgsql",
}

// rootLayout is part of the cache key: bump it when the way a root is
// built changes, so that old roots are not reused.
const rootLayout = "v1"

// rootBuildTimeout bounds one mmdebstrap run; a cold build took ≈ 90 s
// here on a loaded machine (docs/testing.md §4.6).
const rootBuildTimeout = 10 * time.Minute

// RootOptions configures TrixieRoot; the zero value is the defaults.
type RootOptions struct {
	CacheDir string   // DefaultRootCache when empty
	Mirror   string   // DefaultDebianMirror when empty
	Packages []string // TrixiePackages when nil; must include dovecot-core
	// Logf, if set, hears that a build starts and how long it took.
	Logf func(format string, args ...any)
	// Tracker, if set, learns of mmdebstrap's process group, so that a
	// watchdog can stop the build if this process dies.
	Tracker Tracker
}

// TrixieRoot returns the path of a Debian 13 (trixie) root with
// o.Packages, built once with "mmdebstrap --variant=minbase" and then
// reused. The root lives in o.CacheDir under a name derived from the
// package list; it is built in a temporary directory next to it and
// renamed into place, so a root under that name is always complete. A
// file lock makes concurrent callers — parallel test binaries — build it
// once: the others wait for the lock (or ctx) and reuse the result. Roots
// are never modified afterwards (Chroot mounts them read-only).
//
// Without root or without mmdebstrap the error wraps ErrUnavailable; a
// build that fails (no network, a mirror error) is a plain error that
// carries the tail of mmdebstrap's log.
func TrixieRoot(ctx context.Context, o RootOptions) (string, error) {
	if o.CacheDir == "" {
		o.CacheDir = DefaultRootCache
	}
	if o.Mirror == "" {
		o.Mirror = DefaultDebianMirror
	}
	if o.Packages == nil {
		o.Packages = TrixiePackages
	}
	if err := needRoot("building a Debian root"); err != nil {
		return "", err
	}
	final := filepath.Join(o.CacheDir, "trixie-"+rootKey(o.Packages))
	if rootComplete(final) {
		return final, nil
	}
	mmdebstrap, err := LookBin("mmdebstrap")
	if err != nil {
		return "", err
	}
	if err := Mkdirs(o.CacheDir); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, final+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if rootComplete(final) { // built by whoever held the lock before us
		return final, nil
	}
	if err := buildRoot(ctx, mmdebstrap, final, o); err != nil {
		return "", err
	}
	return final, nil
}

// rootKey names a root by what went into it, order of the packages aside.
func rootKey(pkgs []string) string {
	p := slices.Clone(pkgs)
	slices.Sort(p)
	sum := sha256.Sum256([]byte(rootLayout + "\ntrixie\nminbase\n" + strings.Join(p, ",")))
	return hex.EncodeToString(sum[:6])
}

func rootComplete(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "usr/sbin/dovecot"))
	return err == nil
}

// buildRoot runs mmdebstrap into a scratch directory and moves the
// result to final. The caller holds the lock, so any earlier scratch
// directory of this root is left over from a build that died and is
// removed first.
func buildRoot(ctx context.Context, mmdebstrap, final string, o RootOptions) error {
	// Named after final's whole path: builds of other caches may run now.
	sum := sha256.Sum256([]byte(final))
	shmPrefix := filepath.Join("/dev/shm", "authd-root-"+hex.EncodeToString(sum[:6])+".build-")
	stale, _ := filepath.Glob(final + ".build-*")
	shmStale, _ := filepath.Glob(shmPrefix + "*")
	for _, s := range append(stale, shmStale...) {
		if err := RemoveTree(s); err != nil {
			return fmt.Errorf("removing an interrupted build: %w", err)
		}
	}
	start := time.Now()
	if o.Logf != nil {
		o.Logf("building the Debian 13 root %s (mmdebstrap, about 1-2 minutes, once per machine)", final)
	}
	// On a tmpfs the build is I/O-free: unpacking took 6 s there against
	// 79 s on this machine's loaded disk, and the copy back 6 s.
	work, err := scratchDir(final, shmPrefix, o.Tracker)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			_ = RemoveTree(work)
		}
		if o.Tracker != nil {
			o.Tracker.Dir(work, false)
		}
	}()
	log := final + ".log"
	if err := runMmdebstrap(ctx, mmdebstrap, work, log, o); err != nil {
		return err
	}
	if !rootComplete(work) {
		return fmt.Errorf("mmdebstrap succeeded but %s has no usr/sbin/dovecot%s", work, Tails(log))
	}
	tmp := work
	if !strings.HasPrefix(work, final) {
		if tmp, err = copyRoot(ctx, work, final); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return errors.Join(err, RemoveTree(tmp))
	}
	renamed = tmp == work
	if o.Logf != nil {
		o.Logf("built %s in %v", final, time.Since(start).Round(time.Second))
	}
	return nil
}

// scratchDir is where mmdebstrap builds: on /dev/shm when it has room, else
// next to final. Its mode is 0755, because the root's own "/" is this
// directory and Dovecot's users inside must traverse it. The tracker
// learns of it (a watchdog detaches mounts below a directory before
// removing it).
func scratchDir(final, shmPrefix string, tr Tracker) (string, error) {
	var d string
	var err error
	if shmHasRoom(1 << 30) {
		d, err = os.MkdirTemp("/dev/shm", filepath.Base(shmPrefix))
	} else {
		d, err = os.MkdirTemp(filepath.Dir(final), filepath.Base(final)+".build-")
	}
	if err != nil {
		return "", err
	}
	if err := os.Chmod(d, 0o755); err != nil {
		return "", errors.Join(err, os.Remove(d))
	}
	if tr != nil {
		tr.Dir(d, true)
	}
	return d, nil
}

// copyRoot copies a root built elsewhere into a new final.build-*
// directory with cp -a (owners, modes, device nodes, hard links, extended
// attributes) and returns that directory.
func copyRoot(ctx context.Context, from, final string) (string, error) {
	tmp, err := os.MkdirTemp(filepath.Dir(final), filepath.Base(final)+".build-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", errors.Join(err, RemoveTree(tmp))
	}
	if _, err := RunCmd(ctx, CleanEnv(), "", "cp", "-a", from+"/.", tmp+"/"); err != nil {
		return "", errors.Join(err, RemoveTree(tmp))
	}
	return tmp, nil
}

// runMmdebstrap runs the build in its own process group, so that a
// cancelled ctx stops apt and dpkg with it, logging to log.
func runMmdebstrap(ctx context.Context, bin, target, log string, o RootOptions) error {
	ctx, cancel := context.WithTimeout(ctx, rootBuildTimeout)
	defer cancel()
	lf, err := os.Create(log)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, bin,
		"--mode=root", "--variant=minbase", "--include="+strings.Join(o.Packages, ","),
		// The root is renamed into place only once complete, so dpkg's
		// fsyncs buy nothing; retries ride out a flaky mirror.
		"--dpkgopt=force-unsafe-io", "--aptopt=Acquire::Retries=3",
		"trixie", target, o.Mirror)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = CleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting mmdebstrap: %w", err)
	}
	if o.Tracker != nil {
		o.Tracker.Group(cmd.Process.Pid, true)
	}
	err = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stragglers of the group, if any
	if o.Tracker != nil {
		o.Tracker.Group(cmd.Process.Pid, false)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return fmt.Errorf("mmdebstrap trixie %s: %w%s", target, err, Tails(log))
	}
	return nil
}

// lockFile takes an exclusive flock(2) on path, waiting for it as long as
// ctx allows, and returns its release. The kernel drops the lock when the
// holder dies, so a crashed build never blocks the next one.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if !sleep(ctx, 250*time.Millisecond) {
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		}
	}
}
