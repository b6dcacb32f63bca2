package oauth2

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/vars"
)

func newDB(t *testing.T, conf string) *DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dovecot-oauth2.conf.ext")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := New(path, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func req(user string) *backends.Request {
	return &backends.Request{User: user, Vars: &vars.Context{User: user, Service: "imap", RemoteIP: "192.0.2.10", RemotePort: "4242", LocalIP: "192.0.2.1"}}
}

func verify(t *testing.T, db *DB, user, token string) (backends.PassAnswer, error) {
	t.Helper()
	ans, err := db.VerifyPass(context.Background(), req(user), []byte(token))
	if err != nil && strings.Contains(err.Error(), token) {
		t.Errorf("error quotes the token: %v", err)
	}
	return ans, err
}

func wantOutcome(t *testing.T, db *DB, user, token string, want backends.Outcome) backends.PassAnswer {
	t.Helper()
	ans, err := verify(t, db, user, token)
	if err != nil || ans.Outcome != want {
		t.Errorf("user %s token %.8s…: %v err=%v, want %v", user, token, ans.Outcome, err, want)
	}
	return ans
}

func wantError(t *testing.T, db *DB, user, token string) error {
	t.Helper()
	ans, err := verify(t, db, user, token)
	if err == nil {
		t.Errorf("user %s: %v, want an error (could not tell)", user, ans.Outcome)
	}
	return err
}

func seedTokens(idp *testIdP) {
	idp.set("tok-alice", map[string]any{"active": true, "email": "Alice@Example.com", "scope": "openid mail imap", "sub": "a1", "mailhost": "imap1.example.com", "exp": 4102444800})
	idp.set("tok-inactive", map[string]any{"active": false, "email": "alice@example.com"})
	idp.set("tok-bob", map[string]any{"active": true, "email": "bob@example.com", "scope": "mail"})
	idp.set("tok-noscope", map[string]any{"active": true, "email": "alice@example.com", "scope": "openid mail"})
	idp.set("tok-nouser", map[string]any{"active": true, "scope": "mail"})
	idp.set("tok-badtype", map[string]any{"active": true, "email": "alice@example.com", "token_type": "mac"})
	idp.set("tok-str-active", map[string]any{"active": "yes", "email": "alice@example.com"})
}

// TestIntrospectionModes runs the same scenarios in the three HTTP
// introspection modes and checks how the token travelled.
func TestIntrospectionModes(t *testing.T) {
	idp := newTestIdP(t)
	seedTokens(idp)
	for _, mode := range []struct{ mode, url, how string }{
		{"auth", "/introspect", "bearer"},
		{"", "/introspect", "bearer"},
		{"get", "/introspect?token=", "query"},
		{"post", "/introspect", "post"},
	} {
		t.Run("mode="+mode.mode, func(t *testing.T) {
			conf := configText("introspection_url", idp.url(mode.url), "client_id", "authd", "client_secret", "s3cr&t",
				"scope", "mail imap", "pass_attrs", "host=%{oauth2:mailhost} sub=%$ proxy=y nope=%{oauth2:missing:dflt}", "send_auth_headers", "yes")
			if mode.mode != "" {
				conf += "introspection_mode = " + mode.mode + "\n"
			}
			db := newDB(t, conf)
			ans := wantOutcome(t, db, "alice@example.com", "tok-alice", backends.Found)
			for k, want := range map[string]string{"host": "imap1.example.com", "sub": "a1", "proxy": "y", "nope": "dflt", "token": "tok-alice"} {
				if got, _ := ans.Fields.Get(k); got != want {
					t.Errorf("field %s = %q, want %q (fields %s)", k, got, want, ans.Fields)
				}
			}
			s := idp.lastSeen()
			if s.how != mode.how || s.token != "tok-alice" || s.service != "imap" || s.remote != "192.0.2.10:4242" {
				t.Errorf("IdP saw %+v, want the token by %s with the auth headers", s, mode.how)
			}
			if mode.how != "bearer" && (s.clientID != "authd" || s.clientSecret != "s3cr&t") {
				t.Errorf("IdP saw client %q/%q", s.clientID, s.clientSecret)
			}
			wantOutcome(t, db, "alice@example.com", "tok-inactive", backends.Mismatch)
			wantOutcome(t, db, "alice@example.com", "tok-unknown", backends.Mismatch)
			wantOutcome(t, db, "alice@example.com", "tok-bob", backends.Mismatch)
			wantOutcome(t, db, "alice@example.com", "tok-str-active", backends.Mismatch)
			wantOutcome(t, db, "alice@example.com", "tok-noscope", backends.Disabled)
			wantError(t, db, "alice@example.com", "tok-nouser")
			wantError(t, db, "alice@example.com", "tok-badtype")
			wantOutcome(t, db, "alice@example.com", "bad\r\ntoken", backends.Mismatch)
		})
	}
}

// TestTokeninfo: a 4xx from tokeninfo is a refused token; a tokeninfo
// answer with every needed field decides without introspection, unless
// force_introspection; a missing field leads to introspection.
func TestTokeninfo(t *testing.T) {
	idp := newTestIdP(t)
	seedTokens(idp)
	idp.set("tok-carol", map[string]any{"active": false, "email": "carol@example.com"})
	base := []string{"tokeninfo_url", idp.url("/tokeninfo?access_token="), "introspection_url", idp.url("/introspect")}

	db := newDB(t, configText(base...))
	// tokeninfo hides "active": the driver must introspect to learn it.
	before := idp.introspections.Load()
	wantOutcome(t, db, "carol@example.com", "tok-carol", backends.Mismatch)
	wantOutcome(t, db, "alice@example.com", "tok-alice", backends.Found)
	if n := idp.introspections.Load() - before; n != 2 {
		t.Errorf("%d introspections, want 2 (active missing from tokeninfo)", n)
	}
	wantOutcome(t, db, "alice@example.com", "tok-unknown", backends.Mismatch)

	// Without active_attribute, tokeninfo's email is enough.
	db = newDB(t, configText(append(base, "active_attribute", "", "active_value", "")...))
	before = idp.introspections.Load()
	wantOutcome(t, db, "carol@example.com", "tok-carol", backends.Found)
	if n := idp.introspections.Load() - before; n != 0 {
		t.Errorf("%d introspections, want none", n)
	}
	db = newDB(t, configText(append(base, "active_attribute", "", "active_value", "", "force_introspection", "yes")...))
	before = idp.introspections.Load()
	wantOutcome(t, db, "carol@example.com", "tok-carol", backends.Found)
	if n := idp.introspections.Load() - before; n != 1 {
		t.Errorf("%d introspections with force_introspection, want 1", n)
	}
	// pass_attrs reading the token always introspects (Dovecot's rule).
	db = newDB(t, configText(append(base, "active_attribute", "", "active_value", "", "pass_attrs", "host=%{oauth2:mailhost}")...))
	ans := wantOutcome(t, db, "alice@example.com", "tok-alice", backends.Found)
	if h, _ := ans.Fields.Get("host"); h != "imap1.example.com" {
		t.Errorf("host=%q: introspection's field not merged", h)
	}
}

// TestIdPFailures: whatever keeps the driver from reading an answer is a
// temporary failure, never a wrong token; errors never quote the token.
func TestIdPFailures(t *testing.T) {
	idp := newTestIdP(t)
	seedTokens(idp)
	for _, c := range []struct{ name, path string }{
		{"huge", "/huge"}, {"garbage", "/garbage"}, {"redirect", "/redirect"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := newDB(t, configText("introspection_url", idp.url(c.path)))
			wantError(t, db, "alice@example.com", "tok-alice")
		})
	}
	t.Run("timeout", func(t *testing.T) {
		db := newDB(t, configText("introspection_url", idp.url("/slow"), "timeout_msecs", "50"))
		err := wantError(t, db, "alice@example.com", "tok-alice")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a deadline", err)
		}
	})
	t.Run("status-500", func(t *testing.T) {
		db := newDB(t, configText("introspection_url", idp.url("/introspect")))
		idp.status.Store(500)
		defer idp.status.Store(0)
		wantError(t, db, "alice@example.com", "tok-alice")
	})
	t.Run("down", func(t *testing.T) {
		dead := newTestIdP(t)
		u := dead.url("/introspect?token=")
		dead.srv.Close()
		db := newDB(t, configText("introspection_url", u, "introspection_mode", "get", "client_secret", "topsecret"))
		err := wantError(t, db, "alice@example.com", "tok-alice")
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("error quotes the client secret: %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		db := newDB(t, configText("introspection_url", idp.url("/introspect")))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if ans, err := db.VerifyPass(ctx, req("alice@example.com"), []byte("tok-alice")); err == nil {
			t.Errorf("cancelled request answered %v", ans.Outcome)
		}
	})
}

// TestUsernameFormat: the comparison uses username_format on both sides.
func TestUsernameFormat(t *testing.T) {
	idp := newTestIdP(t)
	seedTokens(idp)
	db := newDB(t, configText("introspection_url", idp.url("/introspect")))
	wantOutcome(t, db, "ALICE@example.com", "tok-alice", backends.Found)
	db = newDB(t, configText("introspection_url", idp.url("/introspect"), "username_format", "%n"))
	wantOutcome(t, db, "Alice", "tok-alice", backends.Found)
	wantOutcome(t, db, "alice", "tok-alice", backends.Mismatch)
	db = newDB(t, configText("introspection_url", idp.url("/introspect"), "username_attribute", "sub", "username_format", "%u"))
	wantOutcome(t, db, "a1", "tok-alice", backends.Found)
}

func TestLookupPassHasNoCredentials(t *testing.T) {
	idp := newTestIdP(t)
	db := newDB(t, configText("introspection_url", idp.url("/introspect")))
	ans, err := db.LookupPass(context.Background(), req("alice@example.com"))
	if err != nil || ans.Outcome != backends.NoCredentials {
		t.Errorf("LookupPass: %v %v, want nocredentials", ans.Outcome, err)
	}
	if k := db.PassCacheKey().String(); strings.Contains(k, "%w") || k != "%u" {
		t.Errorf("cache key %q", k)
	}
}

func TestSettingsErrors(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"", "must be given"},
		{"introspection_url = http://x/\nintrospection_mode = bogus\n", "introspection_mode"},
		{"introspection_url = http://x/\nintrospection_mode = local\n", "local_validation_key_dict"},
		{"introspection_url = http://x/\nactive_attribute = a\nactive_value =\n", "active_value"},
		{"introspection_url = http://x/\nactive_attribute =\n", "active_attribute"},
		{"introspection_url = http://x/\nuse_grant_password = yes\n", "not supported"},
		{"introspection_url = http://x/\nrawlog_dir = /tmp/x\n", "rawlog_dir"},
		{"introspection_url = ftp://x/\n", "http or https"},
		{"introspection_url = http://x/\nno_such = 1\n", "unknown setting"},
		{"introspection_url = http://x/\ntimeout_msecs = soon\n", "timeout_msecs"},
		{"introspection_url = http://x/\nclient_secret = hunter2\nbogus = 1\n", "bogus"},
	} {
		_, err := ParseConf("test.ext", []byte(c.conf))
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, backends.ErrConfig) {
			t.Errorf("%q: err = %v, want one mentioning %q", c.conf, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error quotes the client secret: %v", err)
		}
	}
	s, err := ParseConf("test.ext", []byte("introspection_url = http://x/\nclient_secret = hunter2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "hunter2") {
		t.Errorf("String() shows the secret: %s", s)
	}
}

func TestEscapeParam(t *testing.T) {
	if got := escapeParam("a+b/c=d&e f%é~"); got != "a%2Bb%2Fc%3Dd%26e%20f%25%C3%A9~" {
		t.Errorf("escapeParam = %q", got)
	}
}
