//go:build cgo

package nsstest

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <nss.h>
#include <stdlib.h>
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"unsafe"
)

// Module is the service name the module answers as (libnss_authdtest.so.2).
const Module = "authdtest"

// User is the one user the module knows.
type User struct {
	Name     string
	UID, GID int
	Home     string
}

// safe keeps the -D values plain C string literals.
var safe = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// Build compiles the module for u into dir and returns its path. CC (the
// environment variable cgo also reads) names the compiler, cc by default.
func Build(ctx context.Context, dir string, u User) (string, error) {
	if !safe.MatchString(u.Name) || !safe.MatchString(u.Home) || u.UID < 0 || u.GID < 0 {
		return "", fmt.Errorf("nsstest: user %+v: name and home must be [A-Za-z0-9._/-], ids not negative", u)
	}
	src := filepath.Join(dir, "nss_"+Module+".c")
	if err := os.WriteFile(src, []byte(moduleC), 0o600); err != nil {
		return "", fmt.Errorf("nsstest: %w", err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	lib := filepath.Join(dir, "libnss_"+Module+".so.2")
	cmd := exec.CommandContext(ctx, cc, "-shared", "-fPIC", "-O1",
		"-Wl,-soname,libnss_"+Module+".so.2",
		fmt.Sprintf(`-DUSER_NAME="%s"`, u.Name), fmt.Sprintf(`-DHOME_DIR="%s"`, u.Home),
		fmt.Sprintf("-DUSER_UID=%d", u.UID), fmt.Sprintf("-DUSER_GID=%d", u.GID),
		"-o", lib, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("nsstest: %s: %w\n%s", cc, err, out)
	}
	return lib, nil
}

// Use loads the module at lib (from Build) into this process and makes
// the process's passwd lookups "files authdtest". Irreversible: see the
// package comment.
func Use(lib string) error {
	clib := C.CString(lib)
	defer C.free(unsafe.Pointer(clib))
	// RTLD_NODELETE: the module stays mapped for the process's life, as
	// the NSS configuration that names it does.
	if C.dlopen(clib, C.RTLD_NOW|C.RTLD_GLOBAL|C.RTLD_NODELETE) == nil {
		return fmt.Errorf("nsstest: dlopen %s: %s", lib, C.GoString(C.dlerror()))
	}
	db, line := C.CString("passwd"), C.CString("files "+Module)
	defer C.free(unsafe.Pointer(db))
	defer C.free(unsafe.Pointer(line))
	if C.__nss_configure_lookup(db, line) != 0 {
		return errors.New("nsstest: __nss_configure_lookup(passwd) refused the service line")
	}
	return nil
}
