//go:build pam && cgo

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/backends/shadow/shadowtest"
	"github.com/authd-project/authd/internal/testenv"
)

// TestPAMSystemUser: the RHEL "Dovecot with PAM" setup, through the PAM
// build of authd (make test, with libpam0g-dev), with a throwaway local user and a PAM
// service file of the test's own.
func TestPAMSystemUser(t *testing.T) {
	testenv.Require(t, "doveadm", "postfix")
	shadowtest.RequireRoot(t, "writes /etc/pam.d and creates a local user")
	u := shadowtest.NewUser(t, "P4m-pw")
	svc := fmt.Sprintf("authd-test-%06d", rand.IntN(1_000_000))
	path := filepath.Join("/etc/pam.d", svc)
	// nodelay: authd applies auth_failure_delay itself.
	body := "auth required pam_unix.so nodelay\naccount required pam_unix.so\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	checkSystemUser(t, fmt.Sprintf(sysUsersConf, "pam", svc), u)
}
