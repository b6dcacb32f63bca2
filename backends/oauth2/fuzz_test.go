package oauth2

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// FuzzParseObject feeds identity provider answers (house rule 2): no
// panic, and whatever is accepted has at most maxFields fields.
func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{"active":true,"email":"a@b","n":1.5e3,"x":null,"o":{"a":[1]}}`, `{}`, `[]`, `{"a":"\u0000"}`, `{"a":1}{}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var tf tokenFields
		if err := parseObject(b, &tf); err == nil && len(tf.keys) > maxFields {
			t.Fatalf("%d fields", len(tf.keys))
		}
		_ = checkTokenFields(&tf)
	})
}

// FuzzValidateJWT feeds tokens to local validation with a key dict that
// has one HMAC key: nothing forged may pass, nothing may panic.
func FuzzValidateJWT(f *testing.F) {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"HS256","kid":"../x"}`))
	body := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"a","exp":99999999999,"email":"a@b","n":{"m":[1,"x"]}}`))
	for _, s := range []string{hdr + "." + body + ".c2ln", "a.b.c", "...", hdr + ".." + "x"} {
		f.Add(s)
	}
	dir := f.TempDir() + "/"
	db := &DB{set: DefaultSettings(), dict: fsDict{prefix: dir}}
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := db.validateJWT(tok, time.Unix(1700000000, 0)); err == nil {
			t.Fatalf("token accepted without any key: %q", tok)
		} else if strings.Contains(err.Error(), "\x00") {
			t.Fatalf("error with NUL: %q", err)
		}
	})
}
