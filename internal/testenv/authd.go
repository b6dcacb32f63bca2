package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// BuildAuthd compiles ./cmd/authd (pure Go, as make build-static does: the
// tests that run it use neither PAM nor NSS, and it links faster) into a new
// Dir and returns the binary's path, for tests that run authd as a separate
// program. It skips (or fails under AUTHD_REQUIRE_INTEGRATION=1) without a
// Go toolchain.
func BuildAuthd(t testing.TB) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		unavailable(t, "no go toolchain to build authd: %v", err)
	}
	bin := filepath.Join(Dir(t), "authd")
	cmd := exec.CommandContext(t.Context(), gobin, "build", "-o", bin, "github.com/authd-project/authd/cmd/authd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build ./cmd/authd: %v\n%s", err, out)
	}
	return bin
}

// AuthdOptions configures StartAuthd.
type AuthdOptions struct {
	// Bin is the authd binary (BuildAuthd).
	Bin string
	// Config is authd's configuration; base_dir and the metrics listener
	// are set by the launcher (see realserver.AuthdOptions).
	Config string
	// Dir is the instance directory; empty means a new Dir. Pass your own
	// when Config refers to files written before the start.
	Dir string
}

// Authd is an authd daemon run from its binary (realserver.Authd).
type Authd = realserver.Authd

// StartAuthd starts "authd serve" on opts.Config and returns once its
// /readyz answers and auth-client completes a handshake. It is stopped at
// cleanup, and its log is shown if the test failed.
func StartAuthd(t testing.TB, opts AuthdOptions) *Authd {
	t.Helper()
	dir := opts.Dir
	if dir == "" {
		dir = Dir(t)
	}
	a, err := realserver.StartAuthd(t.Context(), realserver.AuthdOptions{
		Instance: instance(dir), Bin: opts.Bin, Config: opts.Config,
	})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(a.Stop)
	logOnFailure(t, a.Log)
	return a
}
