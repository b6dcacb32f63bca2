//go:build cgo && !osusergo

package passwd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/testenv/nsstest"
)

// envNSSChild carries the module's path to the child process of
// TestNSSOnlyUser.
const envNSSChild = "AUTHD_TEST_NSS_MODULE"

// TestNSSOnlyUser: the default (cgo) build finds, and lists, a user that
// only an NSS module other than files knows (as sssd's or nss-ldapd's
// users are), as Dovecot's userdb passwd does through getpwnam. The module
// is a test one (nsstest), enabled for one child process only: neither
// /etc/nsswitch.conf nor any other system file is touched.
func TestNSSOnlyUser(t *testing.T) {
	if lib := os.Getenv(envNSSChild); lib != "" {
		nssChild(t, lib)
		return
	}
	if !UsesNSS {
		t.Fatal("a cgo build that does not use NSS")
	}
	uid := 64000 + rand.IntN(500)
	u := nsstest.User{Name: fmt.Sprintf("authd-nss-%d", uid), UID: uid, GID: uid + 1, Home: fmt.Sprintf("/nonexistent/authd-nss-%d", uid)}
	// Without the module the user does not exist: what the child finds
	// comes from the module.
	if _, err := user.Lookup(u.Name); err == nil {
		t.Fatalf("%s exists on this machine already", u.Name)
	}
	lib, err := nsstest.Build(context.Background(), t.TempDir(), u)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNSSOnlyUser$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envNSSChild+"="+lib,
		fmt.Sprintf("AUTHD_TEST_NSS_USER=%s:%d:%d:%s", u.Name, u.UID, u.GID, u.Home))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNSSOnlyUser") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// nssChild runs in the child process, with the module in use.
func nssChild(t *testing.T, lib string) {
	var name, home string
	var uid, gid int
	spec := strings.ReplaceAll(os.Getenv("AUTHD_TEST_NSS_USER"), ":", " ")
	if _, err := fmt.Sscan(spec, &name, &uid, &gid, &home); err != nil {
		t.Fatalf("AUTHD_TEST_NSS_USER %q: %v", spec, err)
	}
	if err := nsstest.Use(lib); err != nil {
		t.Fatal(err)
	}
	db, _ := New("")
	a, err := db.LookupUser(context.Background(), &backends.Request{User: name})
	if err != nil || a.Outcome != backends.Found {
		t.Fatalf("%s (from NSS) not found: %+v %v", name, a, err)
	}
	for k, want := range map[string]string{"uid": fmt.Sprint(uid), "gid": fmt.Sprint(gid), "home": home, "system_groups_user": name} {
		if v, _ := a.Fields.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	// files still comes first: /etc/passwd's users are found as before.
	if a, err := db.LookupUser(context.Background(), &backends.Request{User: "root"}); err != nil || a.Outcome != backends.Found {
		t.Errorf("root: %+v %v", a, err)
	}
	var listed []string
	if err := db.IterateUsers(context.Background(), func(u string) bool { listed = append(listed, u); return true }); err != nil {
		t.Fatal(err)
	}
	if !contains(listed, name) || !contains(listed, "root") {
		t.Errorf("listing %v lacks %s or root", listed, name)
	}
}
