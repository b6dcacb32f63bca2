package oauth2

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
)

func newDB24(t *testing.T, kv ...string) *DB {
	t.Helper()
	var list []Setting24
	for i := 0; i+1 < len(kv); i += 2 {
		list = append(list, Setting24{Key: kv[i], Value: kv[i+1], Origin: "t.conf:1"})
	}
	s, err := FromSettings24(list)
	if err != nil {
		t.Fatal(err)
	}
	db, err := NewFromSettings(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestSettings24Meaning: what changed in 2.4.1 — the user name format
// applies to the token's name only, a missing active attribute refuses the
// token and an empty active_value asks only for its presence, one wanted
// scope is enough, oauth2_fields read %{oauth2:…}, and post sends the
// token alone.
func TestSettings24Meaning(t *testing.T) {
	idp := newTestIdP(t)
	seedTokens(idp)
	idp.set("tok-noactive", map[string]any{"email": "alice@example.com", "scope": "mail"})
	db := newDB24(t, "oauth2_introspection_mode", "post", "oauth2_introspection_url", idp.url("/introspect"),
		"oauth2_client_id", "authd", "oauth2_client_secret", "s3cret",
		"oauth2_active_attribute", "active", "oauth2_active_value", "true",
		"oauth2_username_validation_format", "%{user | lower}",
		"oauth2_scope/imap", "yes", "oauth2_scope/pop3", "yes",
		"oauth2_fields/host", "%{oauth2:mailhost}", "oauth2_fields/sub:default", "%{oauth2:sub}")
	// Alice@Example.com lowercased on the token's side only.
	ans := wantOutcome(t, db, "alice@example.com", "tok-alice", backends.Found)
	for k, want := range map[string]string{"host": "imap1.example.com", "sub": "a1", "token": "tok-alice"} {
		if got, _ := ans.Fields.Get(k); got != want {
			t.Errorf("field %s = %q, want %q", k, got, want)
		}
	}
	if s := idp.lastSeen(); s.how != "post" || s.clientID != "" || s.clientSecret != "" {
		t.Errorf("IdP saw %+v: 2.4.1 posts the token alone", s)
	}
	wantOutcome(t, db, "ALICE@example.com", "tok-alice", backends.Mismatch) // not formatted on the request's side
	wantOutcome(t, db, "alice@example.com", "tok-noactive", backends.Mismatch)
	wantOutcome(t, db, "alice@example.com", "tok-inactive", backends.Mismatch)
	wantOutcome(t, db, "bob@example.com", "tok-bob", backends.Disabled) // scope mail only

	// 2.3 with the same checks: a token without active passes, every
	// wanted scope is needed, both names are formatted.
	db23 := newDB(t, configText("introspection_mode", "post", "introspection_url", idp.url("/introspect"), "scope", "imap pop3"))
	wantOutcome(t, db23, "alice@example.com", "tok-alice", backends.Disabled)

	// An empty active_value asks only for the attribute.
	db = newDB24(t, "oauth2_introspection_mode", "post", "oauth2_introspection_url", idp.url("/introspect"),
		"oauth2_active_attribute", "active")
	wantOutcome(t, db, "alice@example.com", "tok-inactive", backends.Found)
	wantOutcome(t, db, "alice@example.com", "tok-noactive", backends.Mismatch)
}

// TestSettings24Errors: bad values name their setting and origin and
// never quote the value; 2.4.1's start-up checks apply.
func TestSettings24Errors(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"oauth2_introspection_url", "http://h/i"}, "oauth2_introspection_mode is not set"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "oauth2_send_auth_headers", "sometimes"}, "t.conf:9: oauth2_send_auth_headers"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "oauth2_grant_url", "http://h/g"}, "oauth2_client_id is required with oauth2_grant_url"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "oauth2_client_secret", "hunter2"}, "must be given together"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "ftp://h/i"}, "must be an http or https URL"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "oauth2_audience/x", "yes"}, "oauth2_audience is not applied"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "ssl_client_key_password", "hunter2"}, "ssl_client_key_password: this HTTP/TLS client setting is not applied"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "oauth2_tokeninfo", "x"}, "not an oauth2 setting"},
		{[]string{"oauth2_introspection_mode", "get", "oauth2_introspection_url", "http://h/i", "http_client_max_parallel_connections", "many"}, "http_client_max_parallel_connections"},
	} {
		var list []Setting24
		for i := 0; i+1 < len(tc.kv); i += 2 {
			list = append(list, Setting24{Key: tc.kv[i], Value: tc.kv[i+1], Origin: "t.conf:9"})
		}
		_, err := FromSettings24(list)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want %q", tc.kv, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret quoted: %v", err)
		}
	}
}
