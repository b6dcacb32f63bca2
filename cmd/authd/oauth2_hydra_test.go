package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/testenv"
)

// The oauth2 passdb against a real OAuth2/OpenID Connect server: Ory
// Hydra (internal/testenv), which issues client-credentials tokens (the
// client id is the token's sub, so each client stands for one mail user),
// answers RFC 7662 introspection, revokes tokens and publishes its signing
// keys. authd runs as a daemon and is asked over its auth-client socket
// with OAUTHBEARER and XOAUTH2, as a Dovecot login process would
// (docs/testing.md §8.5).

const hydraAuthdConf = `
base_dir = $DIR/run
auth_mechanisms = plain xoauth2 oauthbearer
auth_failure_delay = 0
# Debug logging, so that the check that no token reaches the log means
# something.
auth_debug = yes
auth_verbose = yes
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $DIR/dovecot-oauth2.conf.ext
}
userdb {
  driver = static
  args = uid=1000 gid=1000 home=/nonexistent
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
`

// hydraUsers are the clients the test registers: alice and erin get JWT
// access tokens, bob and dave opaque ones; short's tokens live a second.
var (
	hydraAlice = testenv.HydraClient{ID: "alice@example.com", Secret: "alice-secret-0123456789", Scope: "mail imap", JWT: true}
	hydraErin  = testenv.HydraClient{ID: "erin@example.com", Secret: "erin-secret-0123456789", Scope: "mail", JWT: true}
	hydraBob   = testenv.HydraClient{ID: "bob@example.com", Secret: "bob-secret-0123456789", Scope: "mail"}
	hydraDave  = testenv.HydraClient{ID: "dave@example.com", Secret: "dave-secret-0123456789", Scope: "mail"}
	hydraShort = testenv.HydraClient{ID: "short@example.com", Secret: "short-secret-0123456789", Scope: "mail", JWT: true, Lifespan: time.Second}
)

// hydraTokens are the tokens of one run.
type hydraTokens struct {
	alice, erin, bob, revoked, expired string
	// tampered is erin's JWT with sub and client_id changed to alice's,
	// under erin's signature; foreign is alice's claims signed by another
	// RSA key under Hydra's kid.
	tampered, foreign string
}

func TestOAuth2AgainstHydra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Hydra")
	}
	h := testenv.StartHydra(t)
	ctx := t.Context()
	for _, c := range []testenv.HydraClient{hydraAlice, hydraErin, hydraBob, hydraDave, hydraShort} {
		if err := h.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	toks, kid := hydraIssue(t, h)
	intro, local := startHydraAuthds(t, h)
	if kid == "" {
		t.Fatal("Hydra's JWT has no kid")
	}
	cases := []struct {
		name, user, token string
		intro, local      string // "ok", "fail" (refused, with the error JSON) or "temp"
	}{
		{"valid-jwt", "alice@example.com", toks.alice, "ok", "ok"},
		{"valid-opaque", "bob@example.com", toks.bob, "ok", "fail"}, // not a JWT: local cannot read it
		{"other-users-token", "alice@example.com", toks.erin, "fail", "fail"},
		{"other-users-opaque", "alice@example.com", toks.bob, "fail", "fail"},
		{"revoked", "dave@example.com", toks.revoked, "fail", "fail"},
		{"expired-jwt", "short@example.com", toks.expired, "fail", "fail"},
		{"tampered-claims", "alice@example.com", toks.tampered, "fail", "fail"},
		{"foreign-signature", "alice@example.com", toks.foreign, "fail", "fail"},
		{"not-a-token", "alice@example.com", "ory_at_nosuchtoken.nosuchsignature", "fail", "fail"},
	}
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		for _, c := range cases {
			t.Run(mech+"/introspection/"+c.name, func(t *testing.T) {
				hydraAuth(t, intro.path("run/auth-client"), mech, c.user, c.token, c.intro, h.PublicURL)
			})
			t.Run(mech+"/local/"+c.name, func(t *testing.T) {
				hydraAuth(t, local.path("run/auth-client"), mech, c.user, c.token, c.local, "")
			})
		}
	}

	// Hydra down: introspection cannot tell, which is a temporary failure
	// and never a refused token; a local JWT needs no server.
	h.Stop()
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		t.Run(mech+"/introspection/idp-down", func(t *testing.T) {
			hydraAuth(t, intro.path("run/auth-client"), mech, "alice@example.com", toks.alice, "temp", "")
		})
		t.Run(mech+"/local/idp-down", func(t *testing.T) {
			hydraAuth(t, local.path("run/auth-client"), mech, "alice@example.com", toks.alice, "ok", "")
		})
	}
	for _, p := range []*proc{intro, local} {
		noTokenLogged(t, p, toks.alice, toks.bob, toks.revoked, toks.tampered)
	}
}

// startHydraAuthds starts two authd daemons on Hydra: one asking its
// introspection endpoint, one validating JWTs locally with its keys.
func startHydraAuthds(t *testing.T, h *testenv.Hydra) (intro, local *proc) {
	t.Helper()
	intro = startAuthd(t, hydraAuthdConf, "run/auth-client", map[string]string{
		"dovecot-oauth2.conf.ext": "introspection_url = " + h.IntrospectionURL() + "\nintrospection_mode = post\n" +
			"username_attribute = sub\nscope = mail\ntimeout_msecs = 20000\n" +
			"openid_configuration_url = " + h.PublicURL + "/.well-known/openid-configuration\n",
	})
	keys := testenv.Dir(t)
	writeHydraKeys(t, h, keys)
	local = startAuthd(t, hydraAuthdConf, "run/auth-client", map[string]string{
		"dovecot-oauth2.conf.ext": "introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix=" + keys + "/\n" +
			"username_attribute = sub\nissuers = " + h.Issuer() + "\n",
	})
	return intro, local
}

// noTokenLogged checks authd's debug log for the tokens.
func noTokenLogged(t *testing.T, p *proc, tokens ...string) {
	t.Helper()
	// The log reaches the test through a pipe, after the replies.
	eventually(func() bool { return strings.Contains(p.stderr.String(), "alice@example.com") })
	log := p.stderr.String()
	if !strings.Contains(log, "alice@example.com") {
		t.Errorf("authd logged nothing about the requests; the token check would prove nothing")
	}
	for _, tok := range tokens {
		if strings.Contains(log, tok) {
			t.Errorf("a token reached authd's log:\n%s", log)
		}
	}
}

// hydraIssue obtains the run's tokens and returns them with the kid of
// Hydra's JWTs.
func hydraIssue(t *testing.T, h *testenv.Hydra) (hydraTokens, string) {
	t.Helper()
	ctx := t.Context()
	token := func(c testenv.HydraClient) string {
		tok, err := h.Token(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	var k hydraTokens
	k.alice, k.erin, k.bob, k.revoked, k.expired = token(hydraAlice), token(hydraErin), token(hydraBob), token(hydraDave), token(hydraShort)
	if err := h.Revoke(ctx, hydraDave, k.revoked); err != nil {
		t.Fatal(err)
	}
	header, claims := splitJWT(t, k.erin)
	claims["sub"], claims["client_id"] = hydraAlice.ID, hydraAlice.ID
	parts := strings.Split(k.erin, ".")
	k.tampered = parts[0] + "." + b64json(t, claims) + "." + parts[2]
	kid, _ := header["kid"].(string)
	_, aliceClaims := splitJWT(t, k.alice)
	k.foreign = signForeign(t, kid, aliceClaims)
	// The short token's exp is a whole second; wait until it has passed
	// (the passdb has no leeway, as Dovecot).
	_, sc := splitJWT(t, k.expired)
	exp, _ := sc["exp"].(json.Number).Int64()
	for time.Now().Unix() <= exp {
		time.Sleep(100 * time.Millisecond)
	}
	return k, kid
}

func splitJWT(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("Hydra's token is not a JWT: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		if err := d.Decode(dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// signForeign signs claims with a fresh RSA key, with Hydra's kid.
func signForeign(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	obj, err := s.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writeHydraKeys puts Hydra's public signing keys into an fs:posix key
// dict under dir, as PEM: dir/default/ALG/KID (Hydra's tokens have no azp).
func writeHydraKeys(t *testing.T, h *testenv.Hydra, dir string) {
	t.Helper()
	raw, err := h.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) == 0 {
		t.Fatal("Hydra published no keys")
	}
	for _, k := range set.Keys {
		der, err := x509.MarshalPKIXPublicKey(k.Public().Key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "default", k.Algorithm, k.KeyID)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hydraAuth runs one OAUTHBEARER or XOAUTH2 exchange and checks its end:
// "ok" (OK for the user), "fail" (the error JSON as a challenge, then
// FAIL after the client's answer) or "temp" (FAIL with code=temp_fail and
// no challenge). openIDURL, when set, must be in the error JSON.
func hydraAuth(t *testing.T, sock, mech, user, token, want, openIDURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	c, err := dovecot.DialAuth(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp := "user=" + user + "\x01auth=Bearer " + token + "\x01\x01"
	if mech == "OAUTHBEARER" {
		resp = "n,a=" + user + ",\x01host=imap.example.com\x01port=143\x01auth=Bearer " + token + "\x01\x01"
	}
	id := strconv.FormatUint(uint64(c.NextID()), 10)
	if err := c.Send("AUTH\t" + id + "\t" + mech + "\tservice=imap\tno-penalty\tresp=" + base64.StdEncoding.EncodeToString([]byte(resp))); err != nil {
		t.Fatal(err)
	}
	r, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	switch want {
	case "ok":
		if u, _ := r.Get("user"); r.Cmd != "OK" || u != user {
			t.Fatalf("want OK user=%s, got %s %q", user, r.Cmd, r.Fields)
		}
		if tok, _ := r.Get("token"); tok != token {
			t.Errorf("OK does not carry the token field")
		}
	case "temp":
		if code, _ := r.Get("code"); r.Cmd != "FAIL" || code != "temp_fail" {
			t.Fatalf("want FAIL code=temp_fail, got %s %q", r.Cmd, r.Fields)
		}
	default:
		hydraRefused(t, ctx, c, r, id, mech, openIDURL)
	}
}

// hydraRefused checks a refused token's exchange: the error document as
// a CONT (RFC 7628 §3.2.2 for OAUTHBEARER, Google's for XOAUTH2), then
// FAIL once the client answers.
func hydraRefused(t *testing.T, ctx context.Context, c *dovecot.AuthClient, r dovecot.Reply, id, mech, openIDURL string) {
	t.Helper()
	if r.Cmd != "CONT" || len(r.Fields) != 1 {
		t.Fatalf("want the error challenge, got %s %q", r.Cmd, r.Fields)
	}
	raw, err := base64.StdEncoding.DecodeString(r.Fields[0])
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]string
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("error challenge is not JSON: %q", raw)
	}
	wantStatus := map[string]string{"OAUTHBEARER": "invalid_token", "XOAUTH2": "401"}[mech]
	if doc["status"] != wantStatus {
		t.Errorf("error JSON %s: status %q, want %q", raw, doc["status"], wantStatus)
	}
	if openIDURL != "" && doc["openid-configuration"] != openIDURL+"/.well-known/openid-configuration" {
		t.Errorf("error JSON %s lacks openid-configuration", raw)
	}
	ack := "AQ==" // %x01, RFC 7628 §3.2.3
	if mech == "XOAUTH2" {
		ack = ""
	}
	if err := c.Send("CONT\t" + id + "\t" + ack); err != nil {
		t.Fatal(err)
	}
	r, err = c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cmd != "FAIL" || strings.Contains(strings.Join(r.Fields, "\t"), "temp_fail") {
		t.Fatalf("want FAIL after the challenge, got %s %q", r.Cmd, r.Fields)
	}
}
