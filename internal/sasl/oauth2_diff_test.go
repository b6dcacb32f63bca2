package sasl_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authd-project/authd/backends/oauth2"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// The oauth2 differential test: Dovecot 2.3's auth process with an oauth2
// passdb and authd with its oauth2 driver read the same
// dovecot-oauth2.conf.ext and ask the same identity provider (a real HTTP
// server run by the test), and must answer OAUTHBEARER, XOAUTH2 and PLAIN
// alike: the OK line (with Dovecot's token= field), the error JSON sent as
// a challenge for a refused token, and the FAIL lines.

// diffIdP answers RFC 7662 introspection POSTs from a token table.
type diffIdP struct {
	srv    *httptest.Server
	mu     sync.Mutex
	tokens map[string]map[string]any
	down   atomic.Bool // answer 503
}

func newDiffIdP(t *testing.T) *diffIdP {
	idp := &diffIdP{tokens: map[string]map[string]any{
		"tok-alice":    {"active": true, "email": "alice@example.com", "scope": "openid imap mail", "sub": "a1", "mailhost": "imap1.example.com"},
		"tok-inactive": {"active": false, "email": "alice@example.com"},
		"tok-bob":      {"active": true, "email": "bob@example.com", "scope": "mail"},
		"tok-noscope":  {"active": true, "email": "alice@example.com", "scope": "openid mail"},
		"tok-nouser":   {"active": true, "scope": "mail"},
	}}
	idp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if idp.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_ = r.ParseForm()
		idp.mu.Lock()
		f, ok := idp.tokens[r.PostForm.Get("token")]
		idp.mu.Unlock()
		if !ok {
			f = map[string]any{"active": false}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f)
	}))
	t.Cleanup(idp.srv.Close)
	return idp
}

// serveOAuth2 serves the client protocol with authd's oauth2 passdb.
func serveOAuth2(t *testing.T, confPath string) string {
	t.Helper()
	db, err := oauth2.New(confPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := vars.ParseFields("")
	eng, err := engine.New(engine.Settings{UsernameChars: dovecotUsernameChars}, []engine.DBSpec{{
		Driver: "oauth2", Passdb: db, DefaultFields: tmpl,
		ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue,
	}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var defs []sasl.Def
	for _, m := range []string{"PLAIN", "OAUTHBEARER", "XOAUTH2"} {
		defs = append(defs, sasl.Defs[m])
	}
	srv := dovecot.NewClientServer(dovecot.ClientConfig{Engine: eng, Mechs: defs, Shared: dovecot.NewShared(4242),
		SASL: &sasl.Settings{OAuth2OpenIDConfigURL: db.OpenIDConfigurationURL()}})
	t.Cleanup(func() { eng.Close() })
	return testenv.ServeUnix(t, filepath.Join(t.TempDir(), "auth-client"), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
}

func bearerResp(user, token string) string {
	return b64("n,a=" + user + ",\x01host=imap.example.com\x01port=143\x01auth=Bearer " + token + "\x01\x01")
}

func xoauth2Resp(user, token string) string {
	return b64("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// oauthScenarios are run against both servers; tokens maps a scenario
// token to the real one (JWTs are made per run).
func oauthScenarios(tokens map[string]string) []diffScenario {
	tok := func(s string) string {
		if v, ok := tokens[s]; ok {
			return v
		}
		return s
	}
	auth := func(mech, resp string) string {
		return "AUTH\t1\t" + mech + "\tservice=imap\tno-penalty\tresp=" + resp
	}
	var out []diffScenario
	for _, c := range []struct{ name, user, token string }{
		{"ok", "alice@example.com", "tok-alice"},
		{"ok-case", "ALICE@example.com", "tok-alice"},
		{"inactive", "alice@example.com", "tok-inactive"},
		{"unknown-token", "alice@example.com", "tok-nosuch"},
		{"other-user", "alice@example.com", "tok-bob"},
		{"no-scope", "alice@example.com", "tok-noscope"},
		{"no-username", "alice@example.com", "tok-nouser"},
		{"expired", "alice@example.com", "jwt-expired"},
		{"bad-signature", "alice@example.com", "jwt-badsig"},
		{"jwt-ok", "alice@example.com", "jwt-ok"},
	} {
		if _, isJWT := tokens[c.token]; strings.HasPrefix(c.token, "jwt-") && !isJWT {
			continue
		}
		out = append(out,
			diffScenario{name: "oauthbearer-" + c.name, run: simple(auth("OAUTHBEARER", bearerResp(c.user, tok(c.token))), "AQ==")},
			diffScenario{name: "xoauth2-" + c.name, run: simple(auth("XOAUTH2", xoauth2Resp(c.user, tok(c.token))), "")},
			diffScenario{name: "plain-" + c.name, run: simple(auth("PLAIN", b64("\x00"+c.user+"\x00"+tok(c.token))))},
		)
	}
	return out
}

// runOAuthDiff runs the scenarios against both sockets, in order (one of
// them changes the IdP).
func runOAuthDiff(t *testing.T, dovecotSock, authdSock string, scenarios []diffScenario) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dc := sc.run(dialAuth(t, dovecotSock))
			got := sc.run(dialAuth(t, authdSock))
			if !slices.Equal(got, dc) {
				t.Errorf("authd   %q\nDovecot %q", got, dc)
			}
			if !strings.HasPrefix(dc[len(dc)-1], "OK") && !strings.HasPrefix(dc[len(dc)-1], "FAIL") {
				t.Errorf("Dovecot did not finish: %q", dc)
			}
		})
	}
}

func startOAuthDovecot(t *testing.T, dir, conf string) *testenv.Dovecot {
	return testenv.StartDovecot(t, testenv.DovecotOptions{Dir: dir, Config: fmt.Sprintf(`
auth_mechanisms = plain oauthbearer xoauth2
auth_failure_delay = 0
disable_plaintext_auth = no
passdb {
  driver = oauth2
  args = %s
}
userdb {
  driver = static
  args = uid=1000 gid=1000 home=/nonexistent
}
`, conf)})
}

// TestDifferentialOAuth2Introspection compares the introspection setup.
func TestDifferentialOAuth2Introspection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	idp := newDiffIdP(t)
	dir := testenv.Dir(t)
	conf := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	writeConf(t, conf, fmt.Sprintf(`introspection_url = %s/introspect
introspection_mode = post
client_id = authd-test
client_secret = not-so-secret
scope = mail imap
pass_attrs = host=%%{oauth2:mailhost} proxy_maybe=y
openid_configuration_url = https://idp.example.com/.well-known/openid-configuration
`, idp.srv.URL))
	dc := startOAuthDovecot(t, dir, conf)
	authdSock := serveOAuth2(t, conf)
	runOAuthDiff(t, dc.Socket("auth-client"), authdSock, oauthScenarios(nil))
	t.Run("idp-down", func(t *testing.T) {
		idp.down.Store(true)
		defer idp.down.Store(false)
		runOAuthDiff(t, dc.Socket("auth-client"), authdSock, oauthScenarios(nil)[:3])
	})
}

// TestDifferentialOAuth2LocalJWT compares local JWT validation with keys
// in an fs:posix dict.
func TestDifferentialOAuth2LocalJWT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	dir := testenv.Dir(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys := filepath.Join(dir, "keys") + "/"
	if err := os.MkdirAll(keys+"default/HS256", 0o755); err != nil {
		t.Fatal(err)
	}
	writeConf(t, keys+"default/HS256/default", base64.StdEncoding.EncodeToString(key))
	conf := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	writeConf(t, conf, "introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix="+keys+
		"\nusername_attribute = email\nactive_attribute =\nactive_value =\n")
	now := time.Now().Unix()
	sign := func(k []byte, claims map[string]any) string {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: k}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := json.Marshal(claims)
		obj, err := s.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := obj.CompactSerialize()
		return c
	}
	other := make([]byte, 32)
	tokens := map[string]string{
		"jwt-ok":      sign(key, map[string]any{"sub": "a1", "email": "alice@example.com", "exp": now + 600, "iat": now - 5}),
		"jwt-expired": sign(key, map[string]any{"sub": "a1", "email": "alice@example.com", "exp": now - 60, "iat": now - 600}),
		"jwt-badsig":  sign(other, map[string]any{"sub": "a1", "email": "alice@example.com", "exp": now + 600}),
		"tok-bob":     sign(key, map[string]any{"sub": "b1", "email": "bob@example.com", "exp": now + 600}),
		"tok-alice":   "opaque-not-a-jwt",
	}
	dc := startOAuthDovecot(t, dir, conf)
	authdSock := serveOAuth2(t, conf)
	var scs []diffScenario
	for _, sc := range oauthScenarios(tokens) {
		switch {
		case strings.Contains(sc.name, "jwt"), strings.Contains(sc.name, "expired"), strings.Contains(sc.name, "bad-signature"),
			strings.Contains(sc.name, "other-user"), strings.HasSuffix(sc.name, "-ok"):
			scs = append(scs, sc)
		}
	}
	runOAuthDiff(t, dc.Socket("auth-client"), authdSock, scs)
}

func writeConf(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
