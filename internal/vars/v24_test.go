package vars

import (
	"slices"
	"strings"
	"testing"
)

// TestParse24Errors: the strict parser rejects what Dovecot 2.4 rejects
// when it loads the configuration, and what it would only fail at every
// expansion (an unknown filter, arguments a filter never takes).
func TestParse24Errors(t *testing.T) {
	tests := []struct{ src, want string }{
		{"%{user", "unterminated %{"},
		{"x %{user | lower", "unterminated %{"},
		{"%{}", "empty %{}"},
		{"%{user |}", "empty filter"},
		{"%{| lower}", "empty filter"},
		{"%{user | lowr}", `unknown filter "lowr"`},
		{"%{user | l}", "did you mean lower?"},
		{"%{user | lower(1)}", "lower: Too many positional parameters"},
		{"%{user | md5(1)}", "md5: Too many positional parameters"},
		{"%{user | base64(x=1)}", "base64: Unsupported key 'x'"},
		{"%{user lower}", "unexpected name (expecting '|' or '}')"},
		{"%{user | encrypt}", "encrypt filter is not supported"},
		{"%{literal('a)}", "unterminated string"},
		{`%{literal('\q')}`, "invalid character escape"},
		{`%{literal('\400')}`, "invalid character escape"},
		{"%{user @ x}", `unexpected character '@'`},
		{"%{user + }", "expecting a number or a variable after +"},
		{"%{user | regexp('a', '\\\\x')}", "a backslash in the replacement must be followed by a digit"},
		{"%{user | regexp('(', 'x')}", "invalid regular expression"},
		{"%{literal(99999999999999999999)}", "out of range"},
	}
	for _, tt := range tests {
		_, err := Syntax24.Parse(tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.src, err, tt.want)
		}
	}
	// What Dovecot accepts at load and fails at expansion parses
	// leniently and fails there.
	tp, err := Syntax24.ParseLenient("%{user | lowr}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.ExpandChecked(&Context{User: "a"}, nil); err == nil || err.Error() != "No such function 'lowr'" {
		t.Errorf("lenient unknown filter: %v", err)
	}
}

// TestExpand24Escape: the escape function sees each expression's final
// value, after the filters, and never the literal text.
func TestExpand24Escape(t *testing.T) {
	tp := Syntax24.MustParse("WHERE u = '%{user | lower}' AND d = '%{user | domain}'")
	esc := func(s string) string { return strings.ReplaceAll(s, "'", "''") }
	got := tp.Expand(&Context{User: "O'Neil@EX'ample"}, esc)
	if want := "WHERE u = 'o''neil@ex''ample' AND d = 'EX''ample'"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTemplate24Introspection(t *testing.T) {
	tp := Syntax24.MustParse("%{user | username}/%{ldap:mail}-%{ldap:uid | lower}-%{protocol}-%{passdb:x}-%{env:HOME}-%{nosuch | default(local_ip)}")
	if got := tp.Providers("ldap"); !slices.Equal(got, []string{"mail", "uid"}) {
		t.Errorf("Providers %v", got)
	}
	if got := tp.Unknown(); !slices.Equal(got, []string{"ldap:", "nosuch"}) {
		t.Errorf("Unknown %v", got)
	}
	if got := tp.CacheKey(); got != "%{user}\t%{protocol}\t%{local_ip}\t%{passdb:x}" {
		t.Errorf("CacheKey %q", got)
	}
	if !tp.Uses("passdb") || !tp.Uses("user") || tp.Uses("password") || tp.Static() {
		t.Error("Uses/Static")
	}
	if !Syntax24.MustParse("a%%b%u").Static() || tp.Syntax() != Syntax24 || MustParse("%u").Syntax() != Syntax23 {
		t.Error("Static/Syntax")
	}
	key := CacheKeyOf(tp).ExpandCacheKey(&Context{User: "a@b", Service: "imap", PassdbID: 3}, false)
	if key != "P3\ta@b\timap\t\t" {
		t.Errorf("cache key %q", key)
	}
}

// TestFind23Convert23: 2.3 syntax in a 2.4 template is found, and the
// common forms are rewritten.
func TestFind23Convert23(t *testing.T) {
	tests := []struct{ src, expr, want string }{
		{"/home/%d/%n", "%d", "%{user | domain}"},
		{"%Lu", "%Lu", "%{user | lower}"},
		{"%2.1Mu", "%2.1Mu", ""},
		{"%{if;%u;eq;x;a;b}", "%{if;%u;eq;x;a;b}", ""},
		{"%{sha256:user}", "%{sha256:user}", ""},
		{"100%% %{user}", "", ""},
		{"%{user | lower}", "", ""},
		{"LIKE 'x%'", "", ""},
	}
	for _, tt := range tests {
		expr, want, found := Find23(tt.src)
		if expr != tt.expr || want != tt.want || found != (tt.expr != "") {
			t.Errorf("Find23(%q) = %q %q %v, want %q %q", tt.src, expr, want, found, tt.expr, tt.want)
		}
	}
	for src, want := range map[string]string{
		"/var/mail/%Ld/%Ln": "/var/mail/%{user | domain | lower}/%{user | username | lower}",
		"%{orig_user}%%":    "%{original_user}%",
		"%{passdb:x:dflt}":  "%{passdb:x | default('dflt')}",
		"%{hostname} %s %w": "%{system:hostname} %{protocol} %{password}",
	} {
		got, ok := Convert23(src)
		if !ok || got != want {
			t.Errorf("Convert23(%q) = %q %v, want %q", src, got, ok, want)
		}
	}
	if _, ok := Convert23("%MLu"); ok {
		t.Error("Convert23 accepted M before another modifier")
	}
}

// TestField24: 2.4's :default is 2.3's :protected.
func TestField24(t *testing.T) {
	f, err := Syntax24.Field("home:default", "/home/%{user}")
	if err != nil || f.Key != "home" || !f.Protected || f.Value.Expand(&Context{User: "u"}, nil) != "/home/u" {
		t.Errorf("%+v %v", f, err)
	}
	if f, err := Syntax24.Field("x:remove", ""); err != nil || !f.Remove || f.Key != "x" {
		t.Errorf("%+v %v", f, err)
	}
	if _, err := Syntax24.Field("x", "%{user"); err == nil {
		t.Error("bad template accepted")
	}
}
