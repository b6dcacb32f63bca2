package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// A hash with a work factor is costly work for package procs (it wants
// every core); a salted digest or a plain comparison is not.
func TestCostlyVerificationsAreAnnounced(t *testing.T) {
	crypt, err := schemes.Generate("SHA512-CRYPT", []byte("pw"), "", 50000)
	if err != nil {
		t.Fatal(err)
	}
	ssha, err := schemes.Generate("SSHA", []byte("pw"), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	db := pwfile(t, fmt.Sprintf("hashed:{SHA512-CRYPT}%s::::::\nsalted:{SSHA}%s::::::\nplain:pw::::::\n", crypt, ssha))
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(db)}, nil)
	calls, restore := engine.CountCostlyWork()
	defer restore()
	ctx := context.Background()
	for _, tc := range []struct {
		user   string
		costly bool
	}{{"plain", false}, {"salted", false}, {"hashed", true}} {
		before := calls()
		if res := e.VerifyPlain(ctx, info, "", tc.user, []byte("pw")); res.Status != engine.StatusOK {
			t.Fatalf("%s: %+v, want success", tc.user, res)
		}
		if got := calls() > before; got != tc.costly {
			t.Errorf("%s: announced costly work = %v, want %v", tc.user, got, tc.costly)
		}
	}
}
