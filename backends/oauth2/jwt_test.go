package oauth2

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authd-project/authd/backends"
)

// signJWT makes a compact JWS with the given header fields and claims.
func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for k, v := range hdr {
		opts.WithHeader(jose.HeaderKey(k), v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type jwtKeys struct {
	hmac []byte
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
}

func newJWTKeys(t *testing.T) jwtKeys {
	t.Helper()
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, 32)
	_, _ = rand.Read(h)
	return jwtKeys{hmac: h, rsa: r, ec: e}
}

func pemPublic(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// keyStore lays the keys out as Dovecot's documentation does for
// fs:posix:prefix=DIR/ (DIR/AZP/ALG/KID) and returns the dict value.
func keyStore(t *testing.T, k jwtKeys) string {
	dir := t.TempDir() + "/keys/"
	writeFile(t, dir+"default/HS256/default", base64.StdEncoding.EncodeToString(k.hmac))
	writeFile(t, dir+"default/RS256/rsa1", pemPublic(t, &k.rsa.PublicKey))
	jwk, _ := jose.JSONWebKey{Key: &k.ec.PublicKey, KeyID: "ec1"}.MarshalJSON()
	writeFile(t, dir+"webmail/ES256/ec1", string(jwk))
	writeFile(t, dir+"default/HS256/a%2fb", base64.StdEncoding.EncodeToString(k.hmac))
	// A file a traversing kid would reach if escaping failed.
	writeFile(t, filepath.Dir(filepath.Clean(dir))+"/HS256/default", base64.StdEncoding.EncodeToString(k.hmac))
	return "fs:posix:prefix=" + dir
}

func claims(user string, mod func(map[string]any)) map[string]any {
	now := time.Now().Unix()
	c := map[string]any{"sub": "s-" + user, "email": user, "iat": now - 10, "exp": now + 600, "iss": "https://idp.example.com",
		"scope": "mail", "groups": map[string]any{"role": "staff"}, "aud": []string{"imap", "smtp"}}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestLocalJWT(t *testing.T) {
	k := newJWTKeys(t)
	dict := keyStore(t, k)
	db := newDB(t, configText("introspection_mode", "local", "local_validation_key_dict", dict,
		"issuers", "https://other.example https://idp.example.com", "pass_attrs", "role=%{oauth2:role}"))
	typ := map[string]any{"typ": "JWT"}
	kid := func(id string) map[string]any { return map[string]any{"typ": "JWT", "kid": id} }
	good := signJWT(t, jose.HS256, k.hmac, typ, claims("alice@example.com", nil))
	ans := wantOutcome(t, db, "alice@example.com", good, backends.Found)
	if r, _ := ans.Fields.Get("role"); r != "staff" {
		t.Errorf("nested claim role=%q, want staff (fields %s)", r, ans.Fields)
	}
	wantOutcome(t, db, "alice@example.com", signJWT(t, jose.RS256, k.rsa, kid("rsa1"), claims("alice@example.com", nil)), backends.Found)
	wantOutcome(t, db, "alice@example.com", signJWT(t, jose.ES256, k.ec, kid("ec1"),
		claims("alice@example.com", func(c map[string]any) { c["azp"] = "webmail" })), backends.Found)
	wantOutcome(t, db, "alice@example.com", signJWT(t, jose.HS256, k.hmac, kid("a/b"), claims("alice@example.com", nil)), backends.Found)

	other := make([]byte, 32)
	wrongRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	refused := map[string]string{
		"another user":     good,
		"expired":          signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { c["exp"] = time.Now().Unix() - 1 })),
		"not yet valid":    signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { c["nbf"] = time.Now().Unix() + 3600 })),
		"issued in future": signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { c["iat"] = time.Now().Unix() + 3600 })),
		"no exp":           signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { delete(c, "exp") })),
		"no sub":           signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { delete(c, "sub") })),
		"bad issuer":       signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { c["iss"] = "https://evil.example" })),
		"no issuer":        signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { delete(c, "iss") })),
		"wrong hmac":       signJWT(t, jose.HS256, other, typ, claims("bob@example.com", nil)),
		"wrong rsa":        signJWT(t, jose.RS256, wrongRSA, kid("rsa1"), claims("bob@example.com", nil)),
		"unknown kid":      signJWT(t, jose.HS256, k.hmac, kid("nosuch"), claims("bob@example.com", nil)),
		"kid traversal":    signJWT(t, jose.HS256, k.hmac, kid("../../HS256/default"), claims("bob@example.com", nil)),
		"azp traversal":    signJWT(t, jose.HS256, k.hmac, typ, claims("bob@example.com", func(c map[string]any) { c["azp"] = ".." })),
		"empty kid":        signJWT(t, jose.HS256, k.hmac, kid(""), claims("bob@example.com", nil)),
		"no typ":           signJWT(t, jose.HS256, k.hmac, nil, claims("bob@example.com", nil)),
		"rsa key as hmac":  signJWT(t, jose.HS256, []byte(pemPublic(t, &k.rsa.PublicKey)), kid("rsa1"), claims("bob@example.com", nil)),
		"alg none":         noneJWT(claims("bob@example.com", nil)),
		"not a jwt":        "opaque-token",
		"tampered":         tamper(signJWT(t, jose.HS256, k.hmac, typ, claims("alice@example.com", nil)), "bob@example.com"),
	}
	for name, tok := range refused {
		t.Run(name, func(t *testing.T) {
			wantOutcome(t, db, "bob@example.com", tok, backends.Mismatch)
		})
	}
	// Scope: aud is a list; the wanted scope may be among its elements.
	db2 := newDB(t, configText("introspection_mode", "local", "local_validation_key_dict", dict, "scope", "smtp"))
	wantOutcome(t, db2, "alice@example.com", signJWT(t, jose.HS256, k.hmac, typ, claims("alice@example.com", func(c map[string]any) { delete(c, "scope") })), backends.Found)
	wantOutcome(t, db2, "alice@example.com", good, backends.Disabled) // scope "mail" is looked at first
}

func noneJWT(c map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(c)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
}

// tamper replaces the claims of a signed token, keeping the signature.
func tamper(tok, user string) string {
	p := strings.Split(tok, ".")
	b, _ := json.Marshal(claims(user, nil))
	return p[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + p[2]
}

// TestFileDict reads keys from a file: dict (alternating key and value
// lines), re-read when the file changes.
func TestFileDict(t *testing.T) {
	k := newJWTKeys(t)
	path := filepath.Join(t.TempDir(), "keys.dict")
	writeFile(t, path, "shared/default/RS256/default\n"+strings.ReplaceAll(pemPublic(t, &k.rsa.PublicKey), "\n", "\x01n")+"\n")
	db := newDB(t, configText("introspection_mode", "local", "local_validation_key_dict", "file:"+path))
	typ := map[string]any{"typ": "JWT"}
	wantOutcome(t, db, "alice@example.com", signJWT(t, jose.RS256, k.rsa, typ, claims("alice@example.com", nil)), backends.Found)
	hs := signJWT(t, jose.HS512, append(k.hmac, k.hmac...), typ, claims("alice@example.com", nil))
	wantOutcome(t, db, "alice@example.com", hs, backends.Mismatch)
	writeFile(t, path, "shared/default/HS512/default\n"+base64.StdEncoding.EncodeToString(append(k.hmac, k.hmac...))+"\n")
	wantOutcome(t, db, "alice@example.com", hs, backends.Found)
}

// TestParseFileDict: keys and values are tab-unescaped, and a lone 0x01
// at the end of a line is dropped, as Dovecot's reader does.
func TestParseFileDict(t *testing.T) {
	m := parseFileDict([]byte("a\x01tb\x01\nline\x01none\x01\nplain\nv\n"))
	if len(m) != 2 || m["a\tb"] != "line\none" || m["plain"] != "v" {
		t.Errorf("parsed %q", m)
	}
}

func TestEscapeDots(t *testing.T) {
	for in, want := range map[string]string{
		"shared/../x":       "shared/..../x",
		"shared/a/..":       "shared/a/....",
		"shared/.hidden/x":  "shared/.hidden/x",
		"shared/a/./b":      "shared/a/.../b",
		"shared/default/HS": "shared/default/HS",
	} {
		if got := escapeDots(in); got != want {
			t.Errorf("escapeDots(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFsDictConfined: the fs dict opens key files only inside the prefix's
// directory. A symbolic link leading out of it is not followed, so no name
// a token can make up reaches a file elsewhere; a prefix that ends inside
// a file name ("DIR/x-") is appended as text, as in Dovecot.
func TestFsDictConfined(t *testing.T) {
	base := t.TempDir()
	writeFile(t, base+"/outside/secret", "outside")
	writeFile(t, base+"/keys/default/HS256/inside", "inside")
	if err := os.Symlink(base+"/outside/secret", base+"/keys/default/HS256/link"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, base+"/keys/x-default/HS256/k", "prefixed")
	d := fsDict{prefix: base + "/keys/"}
	if v, err := d.lookup("shared/default/HS256/inside"); err != nil || v != "inside" {
		t.Errorf("inside: %q %v", v, err)
	}
	if v, err := d.lookup("shared/default/HS256/link"); err == nil {
		t.Errorf("a link out of the key directory was followed: %q", v)
	}
	for _, k := range []string{"shared/../outside/secret", "shared/default/HS256/..", "shared/default/HS256/k\x00", "other/x"} {
		if v, err := d.lookup(k); err == nil {
			t.Errorf("%q: read %q", k, v)
		}
	}
	if v, err := (fsDict{prefix: base + "/keys/x-"}).lookup("shared/default/HS256/k"); err != nil || v != "prefixed" {
		t.Errorf("prefix DIR/x-: %q %v", v, err)
	}
}
