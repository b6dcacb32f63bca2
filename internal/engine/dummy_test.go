package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// schemeObserver records the scheme of every verification, in order.
type schemeObserver struct {
	countingObserver
	schemes []string
}

func (o *schemeObserver) Verify(scheme string, d time.Duration) {
	o.countingObserver.Verify(scheme, d)
	o.schemes = append(o.schemes, scheme)
}

// Every failing login verifies exactly one password hash, whatever made
// it fail, and the hash is of the kind the passdb stores (equal-cost
// failures, docs/architecture.md house rule 4): an unknown user, a wrong
// password, a user without a password, a name error, a user on a deny
// list, a master login that fails, and an auth_bind passdb that does not
// know the user.
func TestEqualCostFailures(t *testing.T) {
	hash := func(pw string) string {
		t.Helper()
		s, err := schemes.Generate("BLF-CRYPT", []byte(pw), "", 4)
		if err != nil {
			t.Fatal(err)
		}
		return "{BLF-CRYPT}" + s
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	usersPath := write("users", fmt.Sprintf("alice@x:%s::::::\nbob@x:%s::::::\nnopw@x:::::::\n", hash("alicepw"), hash("bobpw")))
	denyPath := write("deny", "mallory@x\n")
	mastersPath := write("masters", fmt.Sprintf("admin@x:%s::::::\n", hash("masterpw")))
	open := func(path string) *passwdfile.DB {
		t.Helper()
		db, err := passwdfile.New(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	users, deny, masters := open(usersPath), open(denyPath), open(mastersPath)
	mallory := write("mallory", fmt.Sprintf("mallory@x:%s::::::\n", hash("mallorypw")))
	e := newEngine(t, engine.Settings{
		MasterUserSeparator: "*",
		UsernameChars:       "abcdefghijklmnopqrstuvwxyz@.*",
	}, []engine.DBSpec{
		pass(deny, func(s *engine.DBSpec) { s.Deny = true }),
		pass(masters, func(s *engine.DBSpec) { s.Master = true }),
		pass(users),
		pass(open(mallory)),
	}, nil)
	var obs schemeObserver
	e.SetObserver(&obs)
	ctx := context.Background()

	// A right password verifies once and teaches the passdb its shape.
	if r := e.VerifyPlain(ctx, info, "", "alice@x", []byte("alicepw")); r.Status != engine.StatusOK {
		t.Fatalf("alice: %v", r.Status)
	}
	cases := []struct{ name, authzid, authcid, pw string }{
		{"wrong password", "", "bob@x", "nope"},
		{"unknown user", "", "nosuch@x", "nope"},
		{"no password stored", "", "nopw@x", "nope"},
		{"name error", "", "Bad Name!", "nope"},
		{"deny list", "", "mallory@x", "mallorypw"},
		{"unknown master", "alice@x", "nosuch@x", "nope"},
		{"wrong master password", "alice@x", "admin@x", "nope"},
		{"master separator, unknown master", "", "alice@x*nosuch@x", "nope"},
		{"master name error", "alice@x", "Bad Master!", "nope"},
	}
	for _, c := range cases {
		before := len(obs.schemes)
		r := e.VerifyPlain(ctx, info, c.authzid, c.authcid, []byte(c.pw))
		if r.Status == engine.StatusOK || r.Status == engine.StatusTempFail {
			t.Errorf("%s: status %v, want a failure", c.name, r.Status)
			continue
		}
		got := obs.schemes[before:]
		if len(got) != 1 || got[0] != "BLF-CRYPT" {
			t.Errorf("%s: verified %v, want exactly one BLF-CRYPT", c.name, got)
		}
	}

	// A passdb that checks passwords itself and does not know the user
	// did no work: the dummy stands in for its bind.
	b := &bindPassdb{pw: "secret"}
	be := newEngine(t, engine.Settings{}, []engine.DBSpec{{Driver: "bind", Passdb: b, ResultSuccess: 1}}, nil)
	var bobs schemeObserver
	be.SetObserver(&bobs)
	if r := be.VerifyPlain(ctx, info, "", "nosuch@x", []byte("x")); r.Status != engine.StatusFail || len(bobs.schemes) != 1 {
		t.Errorf("auth_bind, unknown user: %v, verified %v; want a failure after one verification", r.Status, bobs.schemes)
	}
	// One that did bind spent its own cost: no dummy on top.
	if r := be.VerifyPlain(ctx, info, "", "alice@x", []byte("wrong")); r.Status != engine.StatusFail || len(bobs.schemes) != 1 || b.calls != 2 {
		t.Errorf("auth_bind, wrong password: %v, verified %v, %d binds", r.Status, bobs.schemes, b.calls)
	}

	// A passdb of plaintext passwords: the dummy is a plaintext
	// comparison too, not a hash that would make unknown users slower.
	plain := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(pwfile(t, "carol@x:{PLAIN}carolpw::::::\n"))}, nil)
	var pobs schemeObserver
	plain.SetObserver(&pobs)
	plain.VerifyPlain(ctx, info, "", "carol@x", []byte("wrong"))
	if r := plain.VerifyPlain(ctx, info, "", "nosuch@x", []byte("x")); r.Status != engine.StatusFail || len(pobs.schemes) != 2 || pobs.schemes[1] != "PLAIN" {
		t.Errorf("plaintext passdb, unknown user: %v, verified %v; want one PLAIN comparison", r.Status, pobs.schemes)
	}
}
