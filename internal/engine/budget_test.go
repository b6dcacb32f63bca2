package engine_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// TestHashOverBudget: a passdb row whose stored hash is over the cost
// budget (Settings.HashLimits) is a temporary failure, never a wrong
// password; the observer counts it by scheme and parameter; the log names
// the user and the parameter but not the hash. With the default limits the
// same bcrypt row verifies.
func TestHashOverBudget(t *testing.T) {
	bcrypt6, err := schemes.Generate("BLF-CRYPT", []byte("pw"), "", 6)
	if err != nil {
		t.Fatal(err)
	}
	scryptRow := "$7$1/........Usaltsalt$" + strings.Repeat("x", 43) // p = 2^29
	db := pwfile(t, "hostile@x:{CRYPT}"+scryptRow+"::::::\nslow@x:{BLF-CRYPT}"+bcrypt6+"::::::\n")
	var logs bytes.Buffer
	e, err := engine.New(engine.Settings{HashLimits: schemes.Limits{BcryptMaxCost: 5}}, []engine.DBSpec{pass(db)}, nil,
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var obs countingObserver
	e.SetObserver(&obs)
	ctx := context.Background()
	for _, user := range []string{"hostile@x", "slow@x"} {
		if res := e.VerifyPlain(ctx, info, "", user, []byte("pw")); res.Status != engine.StatusTempFail {
			t.Fatalf("%s: status %v, want a temporary failure (reason %q)", user, res.Status, res.Reason)
		}
	}
	if want := []string{"SCRYPT/p", "BLF-CRYPT/cost"}; !slices.Equal(obs.overBudget, want) {
		t.Fatalf("observer saw %v, want %v", obs.overBudget, want)
	}
	out := logs.String()
	for _, want := range []string{"over the cost budget", "user=hostile@x", "param=p", "user=slow@x", "param=cost", "value=6", "limit=5"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"saltsalt", bcrypt6[7:29], bcrypt6[29:]} {
		if strings.Contains(out, secret) {
			t.Errorf("log quotes the stored hash (%q):\n%s", secret, out)
		}
	}

	def := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(db)}, nil)
	if res := def.VerifyPlain(ctx, info, "", "slow@x", []byte("pw")); res.Status != engine.StatusOK {
		t.Fatalf("default limits: %v (%s)", res.Status, res.Reason)
	}
	if _, err := engine.New(engine.Settings{HashLimits: schemes.Limits{BcryptMaxCost: -1}}, nil, nil, nil); err == nil {
		t.Fatal("a negative limit was accepted")
	}
}
