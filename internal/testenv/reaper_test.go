package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// TestReaperDetachesMounts runs the watchdog's script as a crashed test
// binary would leave it: a registered chroot mount point with mounts below
// it, and a registered directory with a bind mount inside (an interrupted
// mmdebstrap's target). Once its input ends, every mount is gone, the
// mount point is removed, the directory too — and nothing was deleted
// through the bind.
func TestReaperDetachesMounts(t *testing.T) {
	requireRoot(t, "mounting")
	outside, cached := Dir(t), Dir(t) // the host's /dev, a cached root
	for _, f := range []string{filepath.Join(outside, "precious"), filepath.Join(cached, "etc", "passwd")} {
		mkdirs(t, filepath.Dir(f))
		writeFile(t, f, "keep")
	}
	base := t.TempDir()
	mp, dir := filepath.Join(base, "chroot"), filepath.Join(base, "build")
	mkdirs(t, mp, filepath.Join(dir, "dev"))
	mount := func(src, dst, fstype string, flags uintptr) {
		t.Helper()
		if err := syscall.Mount(src, dst, fstype, flags, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = realserver.DetachBelow(dst) })
	}
	mount(cached, mp, "", syscall.MS_BIND)
	mount("tmpfs", filepath.Join(mp, "etc"), "tmpfs", 0)
	mount(outside, filepath.Join(dir, "dev"), "", syscall.MS_BIND)

	cmd := exec.Command("/bin/bash", "-c", reaperScript)
	cmd.Stdin = strings.NewReader("m " + mp + "\nd " + dir + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reaper: %v\n%s", err, out)
	}
	if m, err := realserver.MountsBelow(base); err != nil || len(m) != 0 {
		t.Errorf("mounts left: %q %v", m, err)
	}
	for _, d := range []string{mp, dir} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", d, err)
		}
	}
	for _, f := range []string{filepath.Join(outside, "precious"), filepath.Join(cached, "etc", "passwd")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the reaper deleted through a mount: %v", err)
		}
	}
}
