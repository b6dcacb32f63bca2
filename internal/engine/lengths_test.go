package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/engine"
)

// Passwords over 1,024 bytes and names over 256 are refused before any
// lookup or verification, as a plain failure; bearer tokens are not
// passwords and keep only the protocol's line limit.
func TestInputLengths(t *testing.T) {
	pw1024 := strings.Repeat("p", engine.MaxPasswordLen)
	pw1025 := pw1024 + "p"
	token := strings.Repeat("t", 4000)
	name256 := strings.Repeat("n", engine.MaxNameLen-2) + "@x"
	name257 := "n" + name256
	db := pwfile(t, "fits@x:"+pw1024+"::::::\n"+
		"long@x:"+pw1025+"::::::\n"+
		"oauth@x:"+token+"::::::\n"+
		name256+":pw::::::\n"+
		name257+":pw::::::\n")
	e := newEngine(t, engine.Settings{}, []engine.DBSpec{pass(db)}, nil)
	var obs countingObserver
	e.SetObserver(&obs)
	ctx := context.Background()
	oauth := &engine.Info{Service: "imap", Mech: "OAUTHBEARER"}

	cases := []struct {
		name        string
		info        *engine.Info
		user, pw    string
		want        engine.Status
		wantLookups int
		wantUser    string
	}{
		{"1,024-byte password", info, "fits@x", pw1024, engine.StatusOK, 1, "fits@x"},
		{"1,025-byte password, the right one", info, "long@x", pw1025, engine.StatusFail, 0, "long@x"},
		{"256-byte name", info, name256, "pw", engine.StatusOK, 1, name256},
		{"257-byte name", info, name257, "pw", engine.StatusFail, 0, ""},
		{"4,000-byte OAUTHBEARER token", oauth, "oauth@x", token, engine.StatusOK, 1, "oauth@x"},
	}
	for _, tc := range cases {
		obs.lookups = 0
		r := e.VerifyPlain(ctx, tc.info, "", tc.user, []byte(tc.pw))
		if r.Status != tc.want || obs.lookups != tc.wantLookups || r.User != tc.wantUser {
			t.Errorf("%s: %v user %.20q after %d lookups, want %v user %.20q after %d", tc.name, r.Status, r.User, obs.lookups, tc.want, tc.wantUser, tc.wantLookups)
		}
	}
	// An over-long authorization id is refused the same way.
	obs.lookups = 0
	if r := e.VerifyPlain(ctx, info, name257, "fits@x", []byte(pw1024)); r.Status != engine.StatusFail || obs.lookups != 0 {
		t.Errorf("257-byte authzid: %v after %d lookups", r.Status, obs.lookups)
	}
	// And in a credentials lookup (CRAM-MD5, SCRAM, DIGEST-MD5).
	if r, cred := e.LookupCredentials(ctx, info, "", name257, "PLAIN", ""); r.Status != engine.StatusFail || cred != nil || obs.lookups != 0 {
		t.Errorf("credentials for a 257-byte name: %v %q after %d lookups", r.Status, cred, obs.lookups)
	}
	if r, cred := e.LookupCredentials(ctx, info, "", name256, "PLAIN", ""); r.Status != engine.StatusOK || string(cred) != "pw" {
		t.Errorf("credentials for a 256-byte name: %v %q", r.Status, cred)
	}
	// Only the three logins within the bounds verified; the refused
	// ones did not even verify a dummy.
	if obs.verifies != 3 {
		t.Errorf("%d verifications, want 3", obs.verifies)
	}
}
