package schemes

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"
)

// TestCredentials covers passdb_get_credentials' rule (§6): same scheme or
// alias → the stored data; plaintext → derived now; otherwise unavailable.
func TestCredentials(t *testing.T) {
	cram := "cd3ba7deaad6e5ca23448ba42e379747a9e0f7f1fbc00c8a81bbaac395731b56" // "secret"
	cramRaw, _ := hex.DecodeString(cram)
	for _, c := range []struct{ stored, data, wanted, user string }{
		{"CRAM-MD5", cram, "CRAM-MD5", ""},
		{"HMAC-MD5", cram, "CRAM-MD5", ""},
		{"PLAIN", "secret", "CRAM-MD5", ""},
		{"CLEAR.B64", "c2VjcmV0", "CRAM-MD5", ""},
		{"PLAIN-TRUNC", "6-secret", "CRAM-MD5", ""},
	} {
		got, err := Credentials(c.stored, c.data, c.wanted, c.user)
		if err != nil || !bytes.Equal(got, cramRaw) {
			t.Errorf("%s → %s: %x %v", c.stored, c.wanted, got, err)
		}
	}

	// docs/protocol.md §4.3 CRAM-MD5 example: the digest from the stored state.
	d, err := CRAMMD5Digest(cramRaw, []byte("<4821963517264830.1795342708@mail.example.com>"))
	if err != nil || hex.EncodeToString(d) != "f2138134e241df00888cfabe4ea1f9a6" {
		t.Errorf("CRAMMD5Digest = %x %v", d, err)
	}
	mac := hmac.New(md5.New, []byte("secret"))
	mac.Write([]byte("challenge"))
	if d, _ := CRAMMD5Digest(cramRaw, []byte("challenge")); !bytes.Equal(d, mac.Sum(nil)) {
		t.Error("CRAMMD5Digest differs from HMAC-MD5")
	}
	if _, err := CRAMMD5Digest([]byte("short"), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("short credentials: %v", err)
	}

	// DIGEST-MD5: docs/protocol.md §4.1 value for alice@example.com / secret.
	for _, stored := range [][2]string{{"PLAIN", "secret"}, {"DIGEST-MD5", "b1726872c344b6dc8365b774f8fd6412"}} {
		got, err := Credentials(stored[0], stored[1], "DIGEST-MD5", "alice@example.com")
		if err != nil || hex.EncodeToString(got) != "b1726872c344b6dc8365b774f8fd6412" {
			t.Errorf("%s → DIGEST-MD5: %x %v", stored[0], got, err)
		}
	}

	// SCRAM from plaintext: the user's 16-byte salt (the same on every
	// try, another for another user or scheme), 4096 iterations, keys
	// that verify the password.
	a, err := Credentials("PLAIN", "secret", "SCRAM-SHA-256", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := Credentials("PLAIN", "secret", "SCRAM-SHA-256", "alice"); !bytes.Equal(a, b) {
		t.Error("SCRAM credentials from plaintext change between tries")
	}
	if b, _ := Credentials("PLAIN", "secret", "SCRAM-SHA-256", "bob"); bytes.Equal(a, b) {
		t.Error("two users' SCRAM credentials share a salt")
	}
	if !bytes.Equal(UserSalt("SCRAM-SHA-256", "alice"), UserSalt("scram-sha-256", "alice")) || bytes.Equal(UserSalt("SCRAM-SHA-1", "alice"), UserSalt("SCRAM-SHA-256", "alice")) {
		t.Error("UserSalt: the scheme's case matters, or SHA-1 and SHA-256 share a salt")
	}
	sc, err := ParseSCRAMCredentials("SCRAM-SHA-256", string(a))
	if err != nil || sc.Iterations != 4096 || len(sc.Salt) != 16 || len(sc.StoredKey) != 32 {
		t.Fatalf("parsed %+v %v", sc, err)
	}
	if sc2, _ := ParseSCRAMCredentials("SCRAM-SHA-256", string(a)); !bytes.Equal(sc2.Salt, UserSalt("SCRAM-SHA-256", "alice")) {
		t.Error("the derived salt is not UserSalt")
	}
	if ok, err := Verify("SCRAM-SHA-256", string(a), []byte("secret"), ""); !ok || err != nil {
		t.Errorf("derived SCRAM does not verify: %v", err)
	}
	stored := "4096,8lVvLMysguVhoENrhVK2xg==,sUj8Nu6ARHOWkWlxFC7BOO0RDC/zg7l7Iw/S2Rilpiw=,ID+jthvSzT4Ds2UtvXrJZnSJBBm4XbYxU6g2t0IM2dY="
	if got, err := Credentials("SCRAM-SHA-256", stored, "SCRAM-SHA-256", ""); err != nil || string(got) != stored {
		t.Errorf("stored SCRAM: %q %v", got, err)
	}
	if got, err := Credentials("PLAIN", "secret", "PLAIN", ""); err != nil || string(got) != "secret" {
		t.Errorf("PLAIN → PLAIN: %q %v", got, err)
	}
	if got, err := Credentials("PLAIN-MD5", "5ebe2294ecd0e0f08eab7690d2a6ee69", "LDAP-MD5", ""); err != nil || hex.EncodeToString(got) != "5ebe2294ecd0e0f08eab7690d2a6ee69" {
		t.Errorf("alias PLAIN-MD5 → LDAP-MD5: %x %v", got, err)
	}

	// Unavailable combinations (the mechanism fails for that user).
	for _, c := range [][3]string{
		{"SHA512-CRYPT", "$6$x$y", "CRAM-MD5"},
		{"SCRAM-SHA-256", stored, "SCRAM-SHA-1"},
		{"CRAM-MD5", cram, "PLAIN"},
		{"DIGEST-MD5", "b1726872c344b6dc8365b774f8fd6412", "CRAM-MD5"},
		{"SSHA", "2tTlYw+ST2Z54Ybuh0UIjirV0h5412i5", "SCRAM-SHA-1"},
	} {
		if _, err := Credentials(c[0], c[1], c[2], "u"); !errors.Is(err, ErrSchemeUnavailable) {
			t.Errorf("%s → %s: want ErrSchemeUnavailable, got %v", c[0], c[2], err)
		}
	}
	if _, err := Credentials("FOO", "x", "PLAIN", ""); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("unknown stored scheme: %v", err)
	}
	if _, err := Credentials("PLAIN", "x", "FOO", ""); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("unknown wanted scheme: %v", err)
	}
	if _, err := Credentials("CRAM-MD5", "abab", "CRAM-MD5", ""); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed stored: %v", err)
	}
	if _, err := Credentials("PLAIN-TRUNC", "secret", "CRAM-MD5", ""); !errors.Is(err, ErrMalformed) {
		t.Errorf("PLAIN-TRUNC without length: %v", err)
	}
}

// TestDovecotBase64Edges pins base64 handling to doveadm pw -t answers
// (password "secret").
func TestDovecotBase64Edges(t *testing.T) {
	for _, c := range []struct{ data, want string }{
		{"5en6G6MezRroT3XKqkdPOmY/BfQ=", "true"},
		{"5en6G6MezRroT3XKqkdPOmY/BfR=", "true"}, // non-zero spare bits are ignored
		{"5en6G6MezRroT3XKqkdPOmY/BfQ==", "error"},
		{"5en6G6MezRroT3XKqkdPOmY/BfQ=AA", "error"},
		{"5en6G6MezRroT3XKqkdPOmY/\tBfQ=", "true"},
		{"5en6G6Me\nzRroT3XKqkdPOmY/BfQ=", "true"},
		{" 5en6G6MezRroT3XKqkdPOmY/BfQ= ", "true"},
		{"5en6G6MezRroT3XKqkd=POmY/BfQ=", "error"},
	} {
		ok, err := Verify("SHA", c.data, []byte("secret"), "")
		if got := verdictOf(ok, err); got != c.want {
			t.Errorf("%q: got %s (%v), doveadm says %s", c.data, got, err, c.want)
		}
	}
	if ok, err := Verify("SHA.HEX", "E5E9FA1BA31ECD1AE84F75CAAA474F3A663F05F4", []byte("secret"), ""); !ok || err != nil {
		t.Errorf("upper-case hex: %v %v", ok, err)
	}
	if _, err := Verify("SHA.HEX", "e5e9fa1ba31ecd1ae84f75caaa474f3a663f05f4 ", []byte("secret"), ""); !errors.Is(err, ErrMalformed) {
		t.Errorf("hex with a space: %v", err)
	}
}

// CredentialsCostly names exactly the lookups that derive keys.
func TestCredentialsCostly(t *testing.T) {
	for _, c := range []struct {
		stored, wanted string
		want           bool
	}{
		{"PLAIN", "SCRAM-SHA-256", true},
		{"CLEAR", "SCRAM-SHA-1", true},
		{"PLAIN-TRUNC", "SCRAM-SHA-256", true},
		{"plain", "scram-sha-256", true},
		{"SCRAM-SHA-256", "SCRAM-SHA-256", false},
		{"PLAIN", "CRAM-MD5", false},
		{"PLAIN", "DIGEST-MD5", false},
		{"SHA512-CRYPT", "SCRAM-SHA-256", false},
		{"NOSUCH", "SCRAM-SHA-256", false},
		{"PLAIN", "NOSUCH", false},
	} {
		if got := CredentialsCostly(c.stored, c.wanted); got != c.want {
			t.Errorf("CredentialsCostly(%q, %q) = %v, want %v", c.stored, c.wanted, got, c.want)
		}
	}
}
