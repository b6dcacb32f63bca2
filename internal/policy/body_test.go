package policy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/vars"
)

func mustAttributes(t *testing.T, s string) *Attributes {
	t.Helper()
	a, err := ParseAttributes(s)
	if err != nil {
		t.Fatalf("ParseAttributes(%q): %v", s, err)
	}
	return a
}

func testSettings(t *testing.T, url string) Settings {
	t.Helper()
	return Settings{
		URL: url, HashMech: "sha256", Nonce: "n0nce", HashTruncate: 12,
		Attributes:      mustAttributes(t, DefaultAttributes),
		CheckBeforeAuth: true, CheckAfterAuth: true, ReportAfterAuth: true,
	}
}

// Golden values: sha256/md5/sha512 of "n0nce" "alice@example.com" NUL
// "secret", computed with coreutils (printf … | sha256sum), cut as
// Dovecot's buffer_truncate_rshift_bits cuts.
func TestHashPassword(t *testing.T) {
	cases := []struct {
		mech     string
		truncate int
		password []byte
		want     string
	}{
		{"sha256", 12, []byte("secret"), "0f83"},
		{"sha256", 0, []byte("secret"), "f832415ea361a8f161ebfa37186a5e13fbe20936302fafa582952621f3c85a96"},
		{"sha256", 12, nil, "065f"},
		{"sha256", 12, []byte{}, "065f"}, // an empty password hashes as none, as in Dovecot (strlen 0)
		{"md5", 13, []byte("secret"), "1bc1"},
		{"sha512", 16, []byte("secret"), "fce9"},
		// 255 bits: the whole digest shifted right by one (python's
		// int.from_bytes(digest) >> 1).
		{"sha256", 255, []byte("secret"), "7c1920af51b0d478b0f5fd1b8c352f09fdf1049b1817d7d2c14a9310f9e42d4b"},
	}
	for _, tc := range cases {
		newHash, _ := vars.HashMethod(tc.mech)
		if got := hashPassword(newHash, "n0nce", tc.truncate, "alice@example.com", tc.password); got != tc.want {
			t.Errorf("%s/%d/%q: %s, want %s", tc.mech, tc.truncate, tc.password, got, tc.want)
		}
	}
}

func fullVars() *vars.Context {
	return &vars.Context{
		User: "alice@example.com", Service: "imap", Mech: "PLAIN", RemoteIP: "192.0.2.7", LocalIP: "192.0.2.1",
		RemotePort: "40000", ClientID: "Thunderbird", Session: "sess1", Password: "secret", Secured: "TLS",
	}
}

func TestBodyDefaultAttributes(t *testing.T) {
	a := mustAttributes(t, DefaultAttributes)
	vc := *fullVars()
	vc.RequestedUsername, vc.HashedPassword = "alice@example.com", "0f83"
	got := string(a.appendBody(nil, &vc, true, nil))
	want := `{"device_id":"Thunderbird","login":"alice@example.com","protocol":"imap","pwhash":"0f83","remote":"192.0.2.7","session_id":"sess1","tls":true}`
	if got != want {
		t.Errorf("allow body\n got %s\nwant %s", got, want)
	}
	got = string(a.appendBody(nil, &vc, false, &outcome{success: true, policyReject: false}))
	want = `{"device_id":"Thunderbird","login":"alice@example.com","protocol":"imap","pwhash":"0f83","remote":"192.0.2.7","session_id":"sess1","success":true,"policy_reject":false,"tls":false}`
	if got != want {
		t.Errorf("report body\n got %s\nwant %s", got, want)
	}
}

func TestBodyNesting(t *testing.T) {
	vc := fullVars()
	cases := []struct{ attrs, want string }{
		{"", `{"tls":false}`},
		{"b=%s a=%m", `{"a":"PLAIN","b":"imap","tls":false}`},
		{"z=1 x/b=%s x/a=%m y=%r", `{"x":{"a":"PLAIN","b":"imap"},"y":"192.0.2.7","z":"1","tls":false}`},
		{"a/x=1 b/y=2 c=3", `{"a":{"x":"1"},"b":{"y":"2"},"c":"3","tls":false}`},
		{"a=1 a/x=2", `{"a":"1","a":{"x":"2"},"tls":false}`},
		// Dovecot compares group names over the shorter one's length:
		// "ab" continues "a"'s object.
		{"a/x=1 ab/y=2 b/z=3", `{"a":{"x":"1","y":"2"},"b":{"z":"3"},"tls":false}`},
		{"k=%u:%{rip}/%{lport}", `{"k":"alice@example.com:192.0.2.7/0","tls":false}`},
		{"login==%u   pw=%w", `{"login":"alice@example.com","pw":"secret","tls":false}`},
	}
	for _, tc := range cases {
		got := string(mustAttributes(t, tc.attrs).appendBody(nil, vc, false, nil))
		if got != tc.want {
			t.Errorf("%q\n got %s\nwant %s", tc.attrs, got, tc.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("%q: invalid JSON %s", tc.attrs, got)
		}
	}
}

// Client-chosen names, invalid UTF-8 included, give valid JSON that
// decodes to the name with each invalid byte replaced by U+FFFD
// (CVE-2019-10691 was Dovecot asserting on such a name).
func TestBodyEscaping(t *testing.T) {
	a := mustAttributes(t, `login=%{requested_username} orig=%{orig_user} lit=a"b\c`)
	names := map[string]string{
		"plain@example.com":         "plain@example.com",
		"q\"uote\\back":             "q\"uote\\back",
		"ctl\x01\x1f\t\n\r\b\f\x7f": "ctl\x01\x1f\t\n\r\b\f\x7f",
		"bad\xff\xfe":               "bad\uFFFD\uFFFD",
		"cut\xe2\x82":               "cut\uFFFD\uFFFD",
		"surrogate\xed\xa0\x80":     "surrogate\uFFFD\uFFFD\uFFFD",
		"overlong\xc0\xaf":          "overlong\uFFFD\uFFFD",
		"sep\u2028\u2029":           "sep\u2028\u2029",
		"ünïcødé":                   "ünïcødé",
	}
	for in, want := range names {
		vc := &vars.Context{User: in, RequestedUsername: in}
		body := a.appendBody(nil, vc, false, nil)
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%q: invalid JSON %s: %v", in, body, err)
			continue
		}
		if got["login"] != want || got["orig"] != want || got["lit"] != `a"b\c` {
			t.Errorf("%q: decoded %q", in, got)
		}
	}
	// Dovecot's escapes: control characters as \u00xx in lower case,
	// U+2028/2029 escaped, DEL and non-ASCII as they are.
	got := string(appendEscaped(nil, "\x01\x1f\u2028\x7fé\"\\/"))
	if want := `\u0001\u001f\u2028` + "\x7fé" + `\"\\/`; got != want {
		t.Errorf("escaped %q, want %q", got, want)
	}
}

func TestParseAttributesErrors(t *testing.T) {
	bad := []string{
		"login",                   // a key without a value
		"login=%u pwhash",         // the last key has no value
		"a/b/c=%u",                // nested twice
		"k%u=1",                   // '%' in a key
		"login=%{nosuchvariable}", // unknown variable
		"login=%{if;%u}",          // bad if syntax
		"login=%",                 // a lone '%'
	}
	for _, s := range bad {
		if _, err := ParseAttributes(s); err == nil {
			t.Errorf("ParseAttributes(%q) accepted", s)
		}
	}
	good := []string{DefaultAttributes, "", "   ", "a b", "k=%{passdb:x} j=%{sha256:requested_username}"}
	for _, s := range good {
		if _, err := ParseAttributes(s); err != nil {
			t.Errorf("ParseAttributes(%q): %v", s, err)
		}
	}
}

func TestSettingsCheck(t *testing.T) {
	base := testSettings(t, "http://127.0.0.1:1/policy")
	if err := base.Check(); err != nil {
		t.Fatalf("valid settings: %v", err)
	}
	cases := map[string]func(*Settings){
		"auth_policy_hash_nonce must be set":   func(s *Settings) { s.Nonce = "" },
		"invalid auth_policy_hash_mech":        func(s *Settings) { s.HashMech = "SHA256" },
		"not smaller than digest size (128 >=": func(s *Settings) { s.HashMech, s.HashTruncate = "md5", 128 },
		"not an http:// or https:// URL":       func(s *Settings) { s.URL = "ftp://x/" },
		"has no host":                          func(s *Settings) { s.URL = "http:///path" },
		"invalid URL":                          func(s *Settings) { s.URL = "http://[::1/" },
		"not a valid header name":              func(s *Settings) { s.APIHeader = "Bad Header:x" },
	}
	for want, mod := range cases {
		s := base
		mod(&s)
		if err := s.Check(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v", want, err)
		}
	}
	off := Settings{HashMech: "nonsense"}
	if err := off.Check(); err != nil {
		t.Errorf("without a URL nothing is checked (as Dovecot): %v", err)
	}
}

func TestSplitAPIHeader(t *testing.T) {
	cases := []struct{ in, name, value string }{
		{"", "", ""},
		{"secret-key", "X-API-Key", "secret-key"},
		{"Authorization:Bearer abc", "Authorization", "Bearer abc"},
		{"X-Auth: abc:def", "X-Auth", " abc:def"},
	}
	for _, tc := range cases {
		n, v, err := SplitAPIHeader(tc.in)
		if err != nil || n != tc.name || v != tc.value {
			t.Errorf("%q: %q %q %v", tc.in, n, v, err)
		}
	}
}
