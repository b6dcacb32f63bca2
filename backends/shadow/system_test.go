package shadow

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/shadow/shadowtest"
	"github.com/authd-project/authd/schemes"
)

// TestSystemAccount checks the real /etc/shadow: a throwaway account whose
// password chpasswd hashed with the system's default (yescrypt on Debian
// 12), then locked, unlocked, expired and forced to change its password
// with the shadow-utils commands an administrator would use. Every change
// must be seen on the next lookup (the file is replaced each time).
func TestSystemAccount(t *testing.T) {
	t.Parallel() // yescrypt is slow under -race; overlap with TestLookup
	const password = "Corr3ct horse:battery staple"
	u := shadowtest.NewUser(t, password)
	db, err := New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// back checks that the account is usable again with the hash the
	// "right" subtest verified, without paying for yescrypt again.
	hash := u.Hash(t)
	back := func(t *testing.T, after string) {
		t.Helper()
		pe, err := db.LookupPass(ctx, req(u.Name))
		if err != nil || pe.Outcome != backends.Found || pe.Data != hash {
			t.Errorf("after %s: %v err=%v, hash changed=%v", after, pe.Outcome, err, pe.Data != hash)
		}
	}
	verify := func(t *testing.T, pw string) (bool, error) {
		t.Helper()
		pe, err := db.LookupPass(ctx, req(u.Name))
		if err != nil {
			return false, err
		}
		if pe.Outcome != backends.Found || pe.Scheme != "CRYPT" || !pe.HasPassword {
			t.Fatalf("%s: %v entry %+v", u.Name, pe.Outcome, pe.PassEntry)
		}
		// What the engine does with the entry.
		ok, err := schemes.Verify(pe.Scheme, pe.Data, []byte(pw), u.Name)
		if err != nil {
			t.Fatalf("verifying the stored hash: %v", err)
		}
		return ok, nil
	}

	t.Run("hash", func(t *testing.T) {
		// Debian 12's common-password has pam_unix "yescrypt", which
		// chpasswd goes through; elsewhere the default may differ.
		conf, _ := os.ReadFile("/etc/pam.d/common-password")
		yescryptSystem := regexp.MustCompile(`(?m)^password\s.*pam_unix\.so.*\byescrypt\b`).Match(conf)
		switch {
		case yescryptSystem && !strings.HasPrefix(hash, "$y$"):
			t.Errorf("common-password asks for yescrypt but chpasswd wrote %.4s…", hash)
		case !strings.HasPrefix(hash, "$y$"):
			t.Logf("this system hashes with %.4s…, not yescrypt", hash)
		}
		pe, _ := db.LookupPass(ctx, req(u.Name))
		if pe.Data != hash {
			t.Errorf("LookupPass data differs from /etc/shadow")
		}
	})
	t.Run("right", func(t *testing.T) {
		if ok, err := verify(t, password); !ok || err != nil {
			t.Errorf("right password: ok=%v err=%v", ok, err)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		if ok, err := verify(t, password+"x"); ok || err != nil {
			t.Errorf("wrong password: ok=%v err=%v", ok, err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if pe, err := db.LookupPass(ctx, req(u.Name+"x")); pe.Outcome != backends.Unknown || err != nil {
			t.Errorf("unknown user: %v err=%v", pe.Outcome, err)
		}
	})
	t.Run("locked", func(t *testing.T) {
		u.Modify(t, "usermod", "-L")
		pe, err := db.LookupPass(ctx, req(u.Name))
		if err != nil || pe.Outcome != backends.Disabled {
			t.Errorf("after usermod -L: %v err=%v, want disabled", pe.Outcome, err)
		}
		u.Modify(t, "usermod", "-U")
		back(t, "usermod -U")
	})
	t.Run("account-expired", func(t *testing.T) {
		u.Modify(t, "chage", "-E", "0")
		pe, err := db.LookupPass(ctx, req(u.Name))
		if err != nil || pe.Outcome != backends.Expired {
			t.Errorf("after chage -E 0: %v err=%v, want expired", pe.Outcome, err)
		}
		u.Modify(t, "chage", "-E", "-1")
		back(t, "chage -E -1")
	})
	t.Run("must-change", func(t *testing.T) {
		u.Modify(t, "chage", "-d", "0")
		pe, err := db.LookupPass(ctx, req(u.Name))
		if err != nil || pe.Outcome != backends.Expired {
			t.Errorf("after chage -d 0: %v err=%v, want expired", pe.Outcome, err)
		}
	})
}
