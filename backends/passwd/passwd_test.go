package passwd

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
)

func TestLookupRoot(t *testing.T) {
	db, err := New("blocking=yes")
	if err != nil {
		t.Fatal(err)
	}
	a, err := db.LookupUser(context.Background(), &backends.Request{User: "root"})
	if err != nil || a.Outcome != backends.Found {
		t.Fatalf("root: %+v %v", a, err)
	}
	for k, want := range map[string]string{"uid": "0", "gid": "0", "home": "/root", "system_groups_user": "root"} {
		if v, _ := a.Fields.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	for _, name := range []string{"no-such-user-authd", "root:x", "", "a\x00b"} {
		a, err := db.LookupUser(context.Background(), &backends.Request{User: name})
		if err != nil || a.Outcome != backends.Unknown {
			t.Errorf("%q: %+v %v, want unknown", name, a, err)
		}
	}
	if _, err := New("frobnicate"); !errors.Is(err, backends.ErrConfig) {
		t.Errorf("bad args: %v", err)
	}
}

// TestIterate: every user of /etc/passwd is listed (through NSS, whose
// files module reads it, in the cgo build), and fn can stop the walk.
func TestIterate(t *testing.T) {
	db, _ := New("")
	var got []string
	if err := db.IterateUsers(context.Background(), func(u string) bool { got = append(got, u); return true }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, _, _ := strings.Cut(sc.Text(), ":")
		if name != "" && !strings.HasPrefix(name, "#") && !contains(got, name) {
			t.Errorf("%s of /etc/passwd not listed (got %d users)", name, len(got))
		}
	}
	n := 0
	_ = db.IterateUsers(context.Background(), func(string) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("the walk went on after fn returned false: %d", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.IterateUsers(ctx, func(string) bool { return true }); err == nil {
		t.Error("a cancelled walk reported success")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
