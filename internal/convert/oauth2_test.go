package convert

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/config"
)

// TestConvertOAuth2: a 2.3 oauth2 passdb's args file becomes top-level
// oauth2 settings (and oauth2 { } for the HTTP/TLS client), with notes
// where 2.4's meaning differs, and the result loads back with the same
// endpoint settings.
func TestConvertOAuth2(t *testing.T) {
	dir := write(t, map[string]string{
		"main.conf": "auth_mechanisms = plain oauthbearer xoauth2\npassdb {\n  driver = oauth2\n  mechanisms = oauthbearer xoauth2\n  args = $DIR/oauth2.conf.ext\n}\n",
		"oauth2.conf.ext": `introspection_url = https://idp.example.com/introspect
client_id = authd
client_secret = s3cret
username_attribute = sub
scope = mail imap
pass_attrs = quota=%{oauth2:quota} proxy=y
tls_ca_cert_file = /etc/ssl/idp.pem
timeout_msecs = 5000
`,
	})
	b, err := File(filepath.Join(dir, "main.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, line := range []string{
		"oauth2_introspection_url = https://idp.example.com/introspect", "oauth2_username_attribute = sub",
		"oauth2_client_id = authd", "oauth2_client_secret = s3cret", "oauth2_active_value = true",
		"quota = %{oauth2:quota}", "proxy = y", "ssl_client_ca_file = /etc/ssl/idp.pem",
		"http_client_request_timeout = 5000ms", "passdb oauth2 {",
	} {
		if !strings.Contains(out, "\n"+line+"\n") && !strings.Contains(out, " "+line+"\n") {
			t.Errorf("no %q in:\n%s", line, out)
		}
	}
	noteBefore(t, out, "Dovecot 2.3's default (auth) written out", "oauth2_introspection_mode = auth")
	noteBefore(t, out, "2.4 refuses it", "oauth2_active_attribute = active")
	noteBefore(t, out, "formats only the token's", "oauth2_username_validation_format = %{user | lower}")
	noteBefore(t, out, "any one of them", "mail = yes")
	if strings.Contains(out, "args") {
		t.Errorf("args left in:\n%s", out)
	}
	c, err := config.LoadBytes("out.conf", b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range c.Passdbs[0].DriverSettings {
		got[s.Key] = s.Value
	}
	if got["oauth2_introspection_mode"] != "auth" || got["oauth2_scope/imap"] != "yes" || got["http_client_request_timeout"] != "5000ms" ||
		got["oauth2_fields/quota"] != "%{oauth2:quota}" {
		t.Errorf("loaded back: %v", got)
	}
}

// TestConvertOAuth2Problems: what has no 2.4 counterpart fails the
// conversion, named with its file; drivers Dovecot 2.4 removed say so.
func TestConvertOAuth2Problems(t *testing.T) {
	dir := write(t, map[string]string{
		"main.conf": "passdb {\n  driver = oauth2\n  args = $DIR/oauth2.conf.ext\n}\n" +
			"passdb {\n  driver = checkpassword\n  args = /usr/bin/checkpw\n}\n",
		"oauth2.conf.ext": "introspection_mode = local\nlocal_validation_key_dict = fs:posix:prefix=/etc/keys/\ndebug = yes\npass_attrs = x=%2.1{oauth2:y}\n",
	})
	_, err := File(filepath.Join(dir, "main.conf"), Options{})
	var p Problems
	if !errors.As(err, &p) {
		t.Fatalf("want Problems, got %v", err)
	}
	all := strings.Join(p, "\n")
	for _, want := range []string{
		"oauth2.conf.ext: local_validation_key_dict: authd reads JWT validation keys only from a 2.3 args file",
		"oauth2.conf.ext: debug = yes: Dovecot 2.4 has no oauth2 debug setting",
		"oauth2.conf.ext: pass_attrs x: template",
		"main.conf:5: passdb { driver = checkpassword }: Dovecot 2.4 removed the checkpassword driver",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "has no oauth2 driver") {
		t.Errorf("oauth2 called missing:\n%s", all)
	}
}
