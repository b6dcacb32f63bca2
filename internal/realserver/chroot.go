package realserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Chroot is one instance's private, mounted view of a cached Debian root
// (TrixieRoot), for running the programs in it with chroot(2)
// (docs/testing.md §4.6):
//
//   - Root, a new directory, is a bind mount of the cached root, made
//     private (so nothing mounted below it propagates back) and read-only:
//     instances share the cache and none can change it;
//   - Root/proc is a new proc, Root/dev a bind of /dev, Root/tmp a small
//     tmpfs of its own (Dovecot's mail_temp_dir);
//   - every directory in Binds is bind-mounted read-write at the identical
//     path inside, so that configuration files, logs and unix sockets have
//     one path for the programs inside and the tests outside.
//
// Close detaches everything (umount -l) and removes Root. Nothing else
// ever deletes below Root: while a mount might remain, a recursive removal
// could reach /dev or the cache through it.
type Chroot struct {
	Root  string   // the directory chroot(2) changes to
	Binds []string // the directories mounted at their own paths inside

	tracker Tracker
	made    []string // mount points created in the cache (outside /tmp), removed at Close
}

// MountChroot mounts a private view of the root at cached (see Chroot)
// with binds at their identical paths. It needs root. tracker, if not
// nil, learns of the mount so that a watchdog can detach it if this
// process dies.
func MountChroot(cached string, tracker Tracker, binds ...string) (_ *Chroot, err error) {
	if err := needRoot("a chroot"); err != nil {
		return nil, err
	}
	for _, b := range binds {
		if !filepath.IsAbs(b) || filepath.Clean(b) == "/" {
			return nil, fmt.Errorf("MountChroot: bind %q: want an absolute directory below /", b)
		}
	}
	root, err := os.MkdirTemp(TempBase(), "authd-chroot-")
	if err != nil {
		return nil, err
	}
	c := &Chroot{Root: root, tracker: tracker}
	for _, b := range binds {
		c.Binds = append(c.Binds, filepath.Clean(b))
	}
	slices.Sort(c.Binds) // a parent before the directories below it
	if tracker != nil {
		tracker.Mount(root, true)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	if err := c.mountBase(cached, c.Binds); err != nil {
		return nil, err
	}
	for _, b := range c.Binds {
		if err := c.mount(b, filepath.Join(root, b), "", syscall.MS_BIND, ""); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// mountBase mounts the cached root read-only with its own proc, dev and
// tmp, and makes sure a mount point exists for every bind.
func (c *Chroot) mountBase(cached string, binds []string) error {
	// Mount points outside /tmp are made in the cache itself (it is about
	// to become read-only here); those under /tmp go into the tmpfs.
	for _, b := range binds {
		if inTmp(b) {
			continue
		}
		made, err := mkdirAllTracked(filepath.Join(cached, b))
		c.made = append(c.made, made...)
		if err != nil {
			return err
		}
	}
	if err := c.mount(cached, c.Root, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	if err := syscall.Mount("", c.Root, "", syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making %s private: %w", c.Root, err)
	}
	if err := syscall.Mount("", c.Root, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("making %s read-only: %w", c.Root, err)
	}
	if err := c.mount("proc", filepath.Join(c.Root, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return err
	}
	if err := c.mount("/dev", filepath.Join(c.Root, "dev"), "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	if err := c.mount("tmpfs", filepath.Join(c.Root, "tmp"), "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "mode=1777,size=64m"); err != nil {
		return err
	}
	for _, b := range binds {
		if inTmp(b) {
			if err := os.MkdirAll(filepath.Join(c.Root, b), 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

func inTmp(p string) bool {
	return strings.HasPrefix(filepath.Clean(p)+"/", "/tmp/") && filepath.Clean(p) != "/tmp"
}

// mount is mount(2) with an error that names both paths.
func (c *Chroot) mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := syscall.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("mounting %s on %s: %w", src, dst, err)
	}
	return nil
}

// Close detaches every mount below and at Root (lazily, like umount -l,
// so a process still inside cannot keep them), checks in
// /proc/self/mountinfo that none is left, and removes Root and the mount
// points it made in the cache. It is idempotent.
func (c *Chroot) Close() error {
	if c.Root == "" {
		return nil
	}
	if err := DetachBelow(c.Root); err != nil {
		return err // Root stays: removing it is what must never happen with mounts left
	}
	var errs []error
	if err := os.Remove(c.Root); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, d := range slices.Backward(c.made) {
		// EBUSY, ENOTEMPTY: another instance mounts something at or
		// below it right now; an empty directory in the cache is harmless.
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) &&
			!errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	if c.tracker != nil {
		c.tracker.Mount(c.Root, false)
	}
	c.Root, c.made = "", nil
	return errors.Join(errs...)
}

// Sees reports whether path is inside one of the Binds, i.e. has the same
// meaning inside the root as outside.
func (c *Chroot) Sees(path string) bool {
	path = filepath.Clean(path)
	for _, b := range c.Binds {
		if path == b || strings.HasPrefix(path, b+"/") {
			return true
		}
	}
	return false
}

// Command is exec.Command for argv inside the root: chroot(2) to Root,
// working directory "/", the clean environment (CleanEnv), and its own
// process group. argv[0] is a path inside the root.
func (c *Chroot) Command(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Path = argv[0] // looked up inside the root, not in this process's PATH
	cmd.Dir = "/"
	cmd.Env = CleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: c.Root, Setpgid: true}
	return cmd
}

// Run runs argv inside the root (Command) and returns its combined output
// and exit code; err is set only when it could not run to completion.
func (c *Chroot) Run(ctx context.Context, argv ...string) (out string, code int, err error) {
	b, err := c.Command(ctx, argv...).CombinedOutput()
	code, err = ExitCode(err)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return string(b), code, err
}

// ExitCode splits an exec error into an exit code (a normal outcome for
// the caller to judge) and an error (the command did not run to
// completion).
func ExitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitCode(), nil
	}
	return -1, err
}

// DetachBelow lazily unmounts (MNT_DETACH, umount -l) every mount at or
// below dir, deepest first, and then checks /proc/self/mountinfo: an error
// means some mount is still there, so dir must not be removed.
func DetachBelow(dir string) error {
	mounts, err := MountsBelow(dir)
	if err != nil {
		return err
	}
	for _, m := range slices.Backward(mounts) {
		// EINVAL: already gone with a parent detached before it.
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("umount -l %s: %w", m, err)
		}
	}
	left, err := MountsBelow(dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("mounts left below %s after umount -l: %s", dir, strings.Join(left, " "))
	}
	return nil
}

// MountsBelow lists the mount points at or below dir, in the order of
// /proc/self/mountinfo (parents before their children).
func MountsBelow(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dir = filepath.Clean(dir)
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo's paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RemoveTree removes dir recursively, but only after detaching every mount
// below it (DetachBelow): a build interrupted inside dir may have left
// /proc or /dev mounted there, and a plain recursive removal would delete
// through them.
func RemoveTree(dir string) error {
	if err := DetachBelow(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// mkdirAllTracked is os.MkdirAll (mode 0755) returning the directories it
// created, outermost first.
func mkdirAllTracked(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if d == "/" || d == "." {
			break
		}
	}
	slices.Reverse(missing)
	var made []string
	for _, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return made, err
		}
		made = append(made, d)
	}
	return made, nil
}

// TempBase is os.TempDir when every directory on its path can be traversed
// by other users and the path is short (socket paths below it must fit in
// 108 bytes, and Dovecot's users must reach them); otherwise /tmp.
func TempBase() string {
	base := os.TempDir()
	if len(base) > 40 {
		return "/tmp"
	}
	for p := base; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if p == "/" || p == "." {
			return base
		}
	}
}
