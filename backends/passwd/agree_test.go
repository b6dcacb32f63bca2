package passwd

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
)

// systemUsers is the password database as the system sees it: `getent
// passwd` (NSS, as every other program on the machine) in the cgo build,
// /etc/passwd in the static build, which reads nothing else.
func systemUsers(t *testing.T) [][]string {
	t.Helper()
	var data []byte
	var err error
	if UsesNSS {
		data, err = exec.Command("getent", "passwd").Output()
	} else {
		data, err = os.ReadFile("/etc/passwd")
	}
	if err != nil {
		t.Fatal(err)
	}
	var users [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) == 7 && f[0] != "" && !strings.HasPrefix(f[0], "#") && !strings.HasPrefix(f[0], "+") {
			users = append(users, f)
		}
	}
	if len(users) == 0 {
		t.Fatal("no users in the system's password database")
	}
	return users
}

// TestAgreesWithSystem: every user the system's password database has is
// found with its uid, gid and home, and listed; and nobody else is
// listed. In the cgo build that database is NSS (all of nsswitch.conf's
// passwd modules), compared with getent.
func TestAgreesWithSystem(t *testing.T) {
	db, _ := New("")
	var listed []string
	if err := db.IterateUsers(context.Background(), func(u string) bool { listed = append(listed, u); return true }); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range systemUsers(t) {
		if slices.Contains(names, f[0]) {
			continue // a later source's entry for the name: getpwnam answers with the first
		}
		names = append(names, f[0])
		a, err := db.LookupUser(context.Background(), &backends.Request{User: f[0]})
		if err != nil || a.Outcome != backends.Found {
			t.Errorf("%s: %+v %v", f[0], a, err)
			continue
		}
		for k, want := range map[string]string{"uid": f[2], "gid": f[3], "home": f[5]} {
			if v, _ := a.Fields.Get(k); v != want {
				t.Errorf("%s: %s = %q, want %q", f[0], k, v, want)
			}
		}
	}
	slices.Sort(names)
	slices.Sort(listed)
	if !slices.Equal(names, slices.Compact(listed)) {
		t.Errorf("listed %v, the system has %v", listed, names)
	}
}
