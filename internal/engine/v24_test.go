package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/vars"
)

// TestSyntax24: with a Dovecot 2.4 configuration the user name goes
// through 2.4's default auth_username_format (or a protocol's own), and a
// block's fields { } read the driver's fields as %{passwd_file:…}, which
// fields_import_all = no keeps out of the answer.
func TestSyntax24(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(path, []byte("alice@x:{PLAIN}a1:1000:1000::/home/alice::userdb_quota=1G team=red\nalice:{PLAIN}a2::::::\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.NewWith(passwdfile.Options{Path: path, UsernameFormat: "%{user}", Syntax: vars.Syntax24}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := func(k, v string) vars.FieldTemplate {
		ft, err := vars.Syntax24.Field(k, v)
		if err != nil {
			t.Fatal(err)
		}
		return ft
	}
	ctx := context.Background()
	set := engine.Settings{Syntax: vars.Syntax24, ProtocolUsernameFormat: map[string]string{"lmtp": "%{user | username}"}}
	e := newEngine(t, set, []engine.DBSpec{pass(db, func(s *engine.DBSpec) {
		s.FieldsProvider = "passwd_file"
		s.OverrideFields = []vars.FieldTemplate{f("colour", "%{passwd_file:team | upper}")}
	})}, nil)
	res := e.VerifyPlain(ctx, info, "", "ALICE@X", []byte("a1"))
	if res.Status != engine.StatusOK || res.User != "alice@x" {
		t.Fatalf("%v %q %q", res.Status, res.User, res.Reason)
	}
	if v, _ := res.Fields.Get("colour"); v != "RED" {
		t.Errorf("fields %v", res.Fields.String())
	}
	if v, _ := res.Fields.Get("team"); v != "red" {
		t.Errorf("driver fields not imported: %v", res.Fields.String())
	}
	lmtp := &engine.Info{Service: "lmtp", Mech: "PLAIN"}
	if res := e.VerifyPlain(ctx, lmtp, "", "alice@x", []byte("a2")); res.Status != engine.StatusOK || res.User != "alice" {
		t.Errorf("lmtp: %v %q", res.Status, res.User)
	}
	drop := newEngine(t, set, []engine.DBSpec{pass(db, func(s *engine.DBSpec) {
		s.FieldsProvider, s.DropDriverFields = "passwd_file", true
		s.OverrideFields = []vars.FieldTemplate{f("colour", "%{passwd_file:team}")}
	})}, nil)
	res = drop.VerifyPlain(ctx, info, "", "alice@x", []byte("a1"))
	if res.Status != engine.StatusOK || res.Fields.Has("team") {
		t.Errorf("fields_import_all = no: %v %v", res.Status, res.Fields.String())
	}
	if v, _ := res.Fields.Get("colour"); v != "red" {
		t.Errorf("fields %v", res.Fields.String())
	}
}
