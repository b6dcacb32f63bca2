package realserver_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/internal/testenv"
)

// fakeMmdebstrap stands in for mmdebstrap in PATH: it logs its arguments
// to $FAKE_MMDEBSTRAP_LOG, takes a moment (so that concurrent callers
// overlap), and makes a root with usr/sbin/dovecot in its target — or,
// with FAKE_MMDEBSTRAP_FAIL set, fails like a broken mirror.
const fakeMmdebstrap = `#!/bin/sh
echo "$@" >> "$FAKE_MMDEBSTRAP_LOG"
eval target=\${$(($# - 1))}
echo "$FAKE_MMDEBSTRAP_LOG" > "$target/fake-mmdebstrap"
sleep 0.3
if [ -n "$FAKE_MMDEBSTRAP_FAIL" ]; then echo "E: the mirror is unreachable"; exit 3; fi
mkdir -p "$target/usr/sbin" && : > "$target/usr/sbin/dovecot" && chmod 755 "$target/usr/sbin/dovecot"
`

// needRoot skips (or fails under AUTHD_REQUIRE_INTEGRATION=1) without root,
// which building and mounting roots need.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if testenv.Integration() {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
}

func fakeBuilder(t *testing.T) (log string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "mmdebstrap"), []byte(fakeMmdebstrap), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	log = filepath.Join(t.TempDir(), "calls")
	t.Setenv("FAKE_MMDEBSTRAP_LOG", log)
	return log
}

func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestTrixieRootCache: concurrent callers build a root once; the package
// order does not matter, another package list is another root; nothing of
// the builds is left behind.
func TestTrixieRootCache(t *testing.T) {
	needRoot(t)
	log := fakeBuilder(t)
	cache := filepath.Join(t.TempDir(), "cache")
	opts := realserver.RootOptions{CacheDir: cache, Mirror: "http://mirror.invalid/debian"}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	roots := make([]string, 4)
	errs := make([]error, 4)
	for i := range roots {
		wg.Go(func() { roots[i], errs[i] = realserver.TrixieRoot(ctx, opts) })
	}
	wg.Wait()
	for i := range roots {
		if errs[i] != nil || roots[i] != roots[0] {
			t.Fatalf("caller %d: %q, %v (caller 0: %q)", i, roots[i], errs[i], roots[0])
		}
	}
	if c := calls(t, log); len(c) != 1 {
		t.Fatalf("mmdebstrap ran %d times, want once: %q", len(c), c)
	}
	got := calls(t, log)[0]
	for _, want := range []string{"--variant=minbase", "--include=dovecot-core,dovecot-imapd,", " trixie ", " http://mirror.invalid/debian"} {
		if !strings.Contains(got, want) {
			t.Errorf("mmdebstrap arguments %q lack %q", got, want)
		}
	}
	if fi, err := os.Stat(roots[0]); err != nil || fi.Mode().Perm() != 0o755 || filepath.Dir(roots[0]) != cache {
		t.Errorf("root %s: %v %v, want a 0755 directory in %s", roots[0], fi, err, cache)
	}

	reordered := opts
	reordered.Packages = append([]string(nil), realserver.TrixiePackages...)
	reordered.Packages[0], reordered.Packages[1] = reordered.Packages[1], reordered.Packages[0]
	if r, err := realserver.TrixieRoot(ctx, reordered); err != nil || r != roots[0] {
		t.Errorf("reordered packages: %q, %v; want the cached %q", r, err, roots[0])
	}
	other := opts
	other.Packages = []string{"dovecot-core"}
	if r, err := realserver.TrixieRoot(ctx, other); err != nil || r == roots[0] {
		t.Errorf("another package list: %q, %v; want a root of its own", r, err)
	}
	if c := calls(t, log); len(c) != 2 {
		t.Errorf("mmdebstrap ran %d times after a reuse and a new list, want 2", len(c))
	}
	noScratch(t, cache, log)
}

// TestTrixieRootBuildFails: a failed build is an error with mmdebstrap's
// output, not ErrUnavailable, and leaves no root under the final name.
func TestTrixieRootBuildFails(t *testing.T) {
	needRoot(t)
	log := fakeBuilder(t)
	t.Setenv("FAKE_MMDEBSTRAP_FAIL", "1")
	cache := filepath.Join(t.TempDir(), "cache")
	_, err := realserver.TrixieRoot(t.Context(), realserver.RootOptions{CacheDir: cache})
	if err == nil || errors.Is(err, realserver.ErrUnavailable) || !strings.Contains(err.Error(), "the mirror is unreachable") {
		t.Fatalf("error %v, want a build failure that quotes mmdebstrap", err)
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "trixie-*"))
	for _, e := range entries {
		if !strings.HasSuffix(e, ".lock") && !strings.HasSuffix(e, ".log") {
			t.Errorf("left in the cache after a failed build: %s", e)
		}
	}
	noScratch(t, cache, log)
}

// noScratch checks that no build directory is left, in the cache or on
// /dev/shm (where only this test's fake builds count: other test binaries
// may be building real roots right now).
func noScratch(t *testing.T, cache, log string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(cache, "*.build-*"))
	for _, e := range left {
		t.Errorf("build directory left behind: %s", e)
	}
	shm, _ := filepath.Glob("/dev/shm/authd-root-*")
	for _, e := range shm {
		if b, err := os.ReadFile(filepath.Join(e, "fake-mmdebstrap")); err == nil && strings.TrimSpace(string(b)) == log {
			t.Errorf("scratch build left on /dev/shm: %s", e)
		}
	}
}

// TestChroot mounts a hand-made root: binds at identical paths (under
// /tmp, in the chroot's own tmpfs, and elsewhere, made in the root and
// removed again), a read-only root, its own proc and dev, and nothing left
// after Close.
func TestChroot(t *testing.T) {
	needRoot(t)
	base := testenv.Dir(t)
	for _, d := range []string{"etc", "proc", "dev", "tmp"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inTmp := testenv.Dir(t)
	elsewhere, err := os.MkdirTemp("/var/tmp", "authd-chroot-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(elsewhere) })
	for _, d := range []string{inTmp, elsewhere} {
		if err := os.WriteFile(filepath.Join(d, "file"), []byte("seen"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tr := &tracker{}
	c, err := realserver.MountChroot(base, tr, inTmp, elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			c.Close()
		}
	}()
	root := c.Root
	for _, d := range []string{inTmp, elsewhere} {
		if b, err := os.ReadFile(filepath.Join(root, d, "file")); err != nil || string(b) != "seen" {
			t.Errorf("%s inside: %q, %v", d, b, err)
		}
		if err := os.WriteFile(filepath.Join(root, d, "written"), nil, 0o644); err != nil {
			t.Errorf("binds are writable: %v", err)
		}
		if !c.Sees(filepath.Join(d, "x")) {
			t.Errorf("Sees(%s/x) = false", d)
		}
	}
	if c.Sees("/etc/passwd") {
		t.Error("Sees(/etc/passwd) = true for a path that is not bound")
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing into the root: %v, want EROFS", err)
	}
	if _, err := os.Stat(filepath.Join(root, "proc", "self", "status")); err != nil {
		t.Errorf("no proc inside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "dev", "null")); err != nil {
		t.Errorf("no /dev/null inside: %v", err)
	}
	if m, _ := realserver.MountsBelow(root); len(m) != 6 {
		t.Errorf("mounts below the root: %q, want root, proc, dev, tmp and two binds", m)
	}

	closed = true
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if m, err := realserver.MountsBelow(root); err != nil || len(m) != 0 {
		t.Errorf("mounts left after Close: %q %v", m, err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point left after Close: %v", err)
	}
	// The mount point for the bind outside /tmp was made in the base root
	// and is gone again; the one under /tmp lived in the tmpfs.
	if _, err := os.Stat(filepath.Join(base, "var")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point directories left in the base root: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(base, "tmp")); len(entries) != 0 {
		t.Errorf("the base root's tmp was written to: %v", entries)
	}
	ev := strings.Join(tr.all(), ",")
	if !strings.Contains(ev, "mount "+root+" true") || !strings.Contains(ev, "mount "+root+" false") {
		t.Errorf("tracker saw %q", ev)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRemoveTreeDetachesFirst: a tree with a mount inside (as an
// interrupted mmdebstrap leaves) is removed without deleting through the
// mount.
func TestRemoveTreeDetachesFirst(t *testing.T) {
	needRoot(t)
	outside := testenv.Dir(t)
	if err := os.WriteFile(filepath.Join(outside, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tree := testenv.Dir(t)
	mnt := filepath.Join(tree, "a", "dev")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount(outside, mnt, "", syscall.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	if err := realserver.RemoveTree(tree); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tree still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "precious")); err != nil {
		t.Errorf("RemoveTree deleted through a mount: %v", err)
	}
}
