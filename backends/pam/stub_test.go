//go:build !(pam && cgo)

package pam

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
)

// TestStub: a build without PAM (make build-static) says so in words an operator
// can act on, and is a configuration error for `authd check`.
func TestStub(t *testing.T) {
	if Available {
		t.Fatal("Available in a build without the pam tag")
	}
	db, err := New("session=yes %s", nil)
	if db != nil || !errors.Is(err, ErrNotBuilt) || !errors.Is(err, backends.ErrConfig) {
		t.Fatalf("New: %v, %v; want ErrNotBuilt and ErrConfig", db, err)
	}
	for _, want := range []string{"built without PAM support", "libpam0g-dev", "make build", "-tags pam"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// Bad args are reported as such even here.
	if _, err := New("imap session=yes", nil); errors.Is(err, ErrNotBuilt) || !errors.Is(err, backends.ErrConfig) {
		t.Errorf("bad args: %v", err)
	}
	// The methods exist and fail without panicking.
	var d *DB
	if _, err := d.VerifyPass(context.Background(), &backends.Request{User: "u"}, []byte("p")); err == nil {
		t.Error("VerifyPass succeeded")
	}
	if _, err := d.LookupPass(context.Background(), &backends.Request{User: "u"}); err == nil {
		t.Error("LookupPass succeeded")
	}
	var _ backends.Verifier = d
	var _ backends.Closer = d
}
