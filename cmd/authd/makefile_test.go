package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/testenv"
)

// makeDry runs make in the repository with env added to this process's
// (less the calling make's flags) and returns its stdout and stderr.
// With dry (make -n), recipes are printed, not run: the notices appear
// as echo commands on stdout.
func makeDry(t *testing.T, dry bool, env []string, targets ...string) (string, string, error) {
	t.Helper()
	args := append([]string{"--no-print-directory", "-C", "../.."}, targets...)
	if dry {
		args = append([]string{"-n"}, args...)
	}
	cmd := exec.Command("make", args...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// noPAMCompiler is a C compiler that cannot find libpam's headers, as on
// a machine without libpam0g-dev: gcc with an include directory whose
// security/pam_appl.h stops the compilation.
func noPAMCompiler(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "inc", "security"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inc", "security", "pam_appl.h"), []byte("#error no libpam0g-dev here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := filepath.Join(dir, "cc")
	script := "#!/bin/sh\nexec gcc -I" + filepath.Join(dir, "inc") + " \"$@\"\n"
	if err := os.WriteFile(cc, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return cc
}

// TestMakeBuildVariants: make build and make test are the cgo build with
// the PAM passdb where libpam0g-dev is installed; without it they fall
// back and say so (make build-pam and, under AUTHD_REQUIRE_INTEGRATION=1,
// make test fail instead); make build-static is pure Go.
func TestMakeBuildVariants(t *testing.T) {
	testenv.Require(t, "make", "gcc", "go")
	const pamBuild = "CGO_ENABLED=1 go build -tags pam -trimpath -o bin/authd ./cmd/authd"
	if _, err := os.Stat("/usr/include/security/pam_appl.h"); err != nil {
		if testenv.Integration() {
			t.Fatalf("libpam0g-dev is not installed: %v", err)
		}
	} else {
		out, errb, err := makeDry(t, true, nil, "build", "test")
		if err != nil || !strings.Contains(out, pamBuild) || !strings.Contains(out, "go test -tags pam -race") ||
			strings.Contains(out+errb, "make: ") {
			t.Errorf("make build test with libpam0g-dev: %v\n%s%s", err, out, errb)
		}
	}
	cc := noPAMCompiler(t)
	out, errb, err := makeDry(t, true, []string{"CC=" + cc}, "build", "run", "test")
	if err != nil || strings.Contains(out, "-tags pam") || !strings.Contains(out, "go build  -trimpath") ||
		strings.Count(out, "no PAM headers (apt-get install libpam0g-dev)") != 3 {
		t.Errorf("make build run test without libpam0g-dev: %v\n%s%s", err, out, errb)
	}
	_, errb, err = makeDry(t, false, []string{"CC=" + cc}, "build-pam")
	if err == nil || !strings.Contains(errb, "needs cgo (a C compiler) and libpam0g-dev") {
		t.Errorf("make build-pam without libpam0g-dev: %v\n%s", err, errb)
	}
	// GO=false: if the guard let it through, no test would run anyway.
	_, errb, err = makeDry(t, false, []string{"CC=" + cc, "GO=false", "AUTHD_REQUIRE_INTEGRATION=1"}, "test")
	if err == nil || !strings.Contains(errb, "AUTHD_REQUIRE_INTEGRATION=1 but no PAM build") {
		t.Errorf("make test under AUTHD_REQUIRE_INTEGRATION=1 without libpam0g-dev: %v\n%s", err, errb)
	}
	out, errb, err = makeDry(t, true, []string{"CGO_ENABLED=0"}, "build")
	if err != nil || strings.Contains(out, "-tags pam") || !strings.Contains(out, "cgo is off") {
		t.Errorf("make build without cgo: %v\n%s%s", err, out, errb)
	}
	out, _, err = makeDry(t, true, nil, "build-static")
	if err != nil || !strings.Contains(out, "CGO_ENABLED=0 go build -trimpath -o bin/authd ./cmd/authd") {
		t.Errorf("make build-static: %v\n%s", err, out)
	}
}
