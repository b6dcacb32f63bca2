package vars

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	//lint:ignore SA1019 checks the %{md4:…} variable hash
	"golang.org/x/crypto/md4"
)

// Hand-verified tables (docs/protocol.md §5.5, §5.6, §5.9). The behaviour that
// a live Dovecot can show is also in testdata/golden.json; these tables
// add what override_fields cannot show: the escape function, the text of
// failed expansions, strict parsing, cache keys and the field syntax.

func fullContext() *Context {
	return &Context{
		User: "alice@example.com", OrigUser: "Alice@Example.COM",
		Service: "imap", Mech: "PLAIN",
		LocalIP: "192.0.2.10", RemoteIP: "192.0.2.1", LocalPort: "143", RemotePort: "51234",
		RealLocalIP: "198.51.100.10", RealRemoteIP: "198.51.100.1", RealLocalPort: "1143", RealRemotePort: "61234",
		ClientPID: "4242", Password: "s3cr'et", PassdbID: 3, Secured: "TLS", Cert: "valid",
		Session: "sess1", SessionPID: "777", LocalName: "mail.example.com", ClientID: "cid",
		Home:   "/home/alice",
		Passdb: MapFields{"foo": "bar", "empty": ""},
		Userdb: MapFields{"home": "/var/mail/alice"},
	}
}

func TestVariables(t *testing.T) {
	c := fullContext()
	tests := []struct{ tmpl, want string }{
		{"%u", "alice@example.com"}, {"%n", "alice"}, {"%d", "example.com"}, {"%s", "imap"},
		{"%h", "/home/alice"}, {"%l", "192.0.2.10"}, {"%r", "192.0.2.1"}, {"%p", "4242"},
		{"%w", "s3cr'et"}, {"%!", "3"}, {"%m", "PLAIN"}, {"%c", "TLS"}, {"%a", "143"},
		{"%b", "51234"}, {"%k", "valid"}, {"%%", "%"},
		{"%{user}", "alice@example.com"}, {"%{username}", "alice"}, {"%{domain}", "example.com"},
		{"%{service}", "imap"}, {"%{home}", "/home/alice"}, {"%{lip}", "192.0.2.10"},
		{"%{rip}", "192.0.2.1"}, {"%{pid}", "4242"}, {"%{password}", "s3cr'et"},
		{"%{mech}", "PLAIN"}, {"%{mechanism}", "PLAIN"}, {"%{secured}", "TLS"},
		{"%{lport}", "143"}, {"%{rport}", "51234"}, {"%{cert}", "valid"},
		{"%{session}", "sess1"}, {"%{session_pid}", "777"}, {"%{local_name}", "mail.example.com"},
		{"%{client_id}", "cid"},
		{"%{real_lip}", "198.51.100.10"}, {"%{real_rip}", "198.51.100.1"},
		{"%{real_lport}", "1143"}, {"%{real_rport}", "61234"},
		{"%{local_ip}", "192.0.2.10"}, {"%{remote_ip}", "192.0.2.1"},
		{"%{local_port}", "143"}, {"%{remote_port}", "51234"},
		{"%{real_local_ip}", "198.51.100.10"}, {"%{real_remote_ip}", "198.51.100.1"},
		{"%{real_local_port}", "1143"}, {"%{real_remote_port}", "61234"},
		{"%{orig_user}", "Alice@Example.COM"}, {"%{orig_username}", "Alice"}, {"%{orig_domain}", "Example.COM"},
		{"%{original_user}", "Alice@Example.COM"}, {"%{original_username}", "Alice"},
		{"%{original_domain}", "Example.COM"},
		{"%{auth_user}", "Alice@Example.COM"}, {"%{auth_username}", "Alice"}, {"%{auth_domain}", "Example.COM"},
		{"%{master_user}", ""}, {"%{login_user}", ""}, {"%{login_username}", ""}, {"%{login_domain}", ""},
		{"%{domain_first}", "example.com"}, {"%{domain_last}", "example.com"},
		{"%{passdb:foo}", "bar"}, {"%{passdb:empty:dflt}", ""}, {"%{passdb:nope:dflt}", "dflt"},
		{"%{passdb:nope:a:b}", "a:b"}, {"%{userdb:home}", "/var/mail/alice"}, {"%{userdb:foo}", ""},
		{"/var/mail/%d/%n", "/var/mail/example.com/alice"}, {"", ""}, {"plain", "plain"},
	}
	for _, tt := range tests {
		tp, err := Parse(tt.tmpl)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.tmpl, err)
			continue
		}
		got, err := tp.ExpandChecked(c, nil)
		if got != tt.want || err != nil {
			t.Errorf("%q = %q, %v; want %q", tt.tmpl, got, err, tt.want)
		}
		if got2 := string(tp.AppendExpand([]byte("x"), c, nil)); got2 != "x"+tt.want {
			t.Errorf("AppendExpand(%q) = %q", tt.tmpl, got2)
		}
	}
}

func TestMasterAndLoginUser(t *testing.T) {
	c := &Context{User: "alice@a.example", OrigUser: "admin@b.example", MasterUser: "admin@b.example",
		LoginUser: "bob@c.example"}
	for tmpl, want := range map[string]string{
		"%{master_user}": "admin@b.example", "%{auth_user}": "admin@b.example",
		"%{auth_username}": "admin", "%{auth_domain}": "b.example",
		"%{login_user}": "bob@c.example", "%{login_username}": "bob", "%{login_domain}": "c.example",
	} {
		if got := MustParse(tmpl).Expand(c, nil); got != want {
			t.Errorf("%s = %q, want %q", tmpl, got, want)
		}
	}
	// auth_user falls back to the original name when there is no master.
	c = &Context{User: "alice@a.example"}
	if got := MustParse("%{auth_user}|%{orig_user}|%{orig_domain}").Expand(c, nil); got != "alice@a.example|alice@a.example|a.example" {
		t.Errorf("fallback: %q", got)
	}
}

func TestUserSplitting(t *testing.T) {
	tests := []struct{ user, n, d, first, last string }{
		{"alice", "alice", "", "", ""},
		{"alice@example.com", "alice", "example.com", "example.com", "example.com"},
		{"a@b@c", "a", "b@c", "b", "c"}, // %n/%d split at the first '@'
		{"@x", "", "x", "x", "x"},
		{"x@", "x", "", "", ""},
	}
	tp := MustParse("%n|%d|%{domain_first}|%{domain_last}")
	for _, tt := range tests {
		want := tt.n + "|" + tt.d + "|" + tt.first + "|" + tt.last
		if got := tp.Expand(&Context{User: tt.user}, nil); got != want {
			t.Errorf("%q: got %q, want %q", tt.user, got, want)
		}
	}
}

func TestEmptyNumbers(t *testing.T) {
	// Dovecot prints ports and the client pid with dec2str: 0 when unset.
	got := MustParse("%p|%a|%b|%{real_lport}|%{real_rport}|%{session_pid}|%l|%!").Expand(&Context{}, nil)
	if got != "0|0|0|0|0||||0" && got != "0|0|0|0|0|||0" {
		t.Errorf("got %q", got)
	}
}

func TestModifiers(t *testing.T) {
	c := &Context{User: "Alice.Smith@Example.COM", Service: "value", Password: "value2",
		Session: "a'b\"c\\d", LocalPort: "143", LocalName: "x \t\n", ClientID: "18446744073709551616"}
	tests := []struct{ tmpl, want string }{
		{"%Lu", "alice.smith@example.com"}, {"%Uu", "ALICE.SMITH@EXAMPLE.COM"},
		{"%E{session}", `a\'b\"c\\d`}, {"%Xa", "8f"}, {"%Xu", "0"}, {"%X{client_id}", "0"},
		{"%Ru", "MOC.elpmaxE@htimS.ecilA"}, {"%Ds", "value"}, {"%Dd", "Example,dc=COM"},
		{"%T{local_name}", "x"}, {"%Ms", "2063c1608d6e0baf80249c42e2be5804"},
		// from Dovecot's own var-expand tests
		{"%50Hs", "1f"}, {"%50Hw", "2e"}, {"%50Ns", "25"}, {"%50Nw", "e"},
		{"%LRu", "moc.elpmaxe@htims.ecila"}, {"%ULu", "alice.smith@example.com"},
		{"%2.1Mu", "8"}, {"%L{user}", "alice.smith@example.com"},
		// more than 10 modifiers: the 11th letter is the variable
		{"%LLLLLLLLLLLu", "UNSUPPORTED_VARIABLE_Lu"},
	}
	for _, tt := range tests {
		if got := ParseLenient(tt.tmpl).Expand(c, nil); got != tt.want {
			t.Errorf("%q = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestOffsetsAndWidths(t *testing.T) {
	// %s = "value1234", as in Dovecot's own range tests.
	c := &Context{Service: "value1234", LocalPort: "143"}
	tests := []struct{ tmpl, want string }{
		{"%s", "value1234"}, {"%3s", "val"}, {"%3.2s", "ue"}, {"%3.-2s", "ue12"},
		{"%-3.2s", "23"}, {"%0.-1s", "value123"}, {"%-4.-1s", "123"},
		{"%-3s", "val"},         // the sign only matters before a '.'
		{"%.-20s", "value1234"}, // dropping more than there is keeps all
		{"%.-9s", ""}, {"%20.2s", ""}, {"%-20.2s", "va"},
		{"%05a", "00143"}, {"%02a", "143"}, {"%.05a", "00143"}, {"%3.05a", "00000"},
		{"%08Xa", "0000008f"}, {"%0Xa", "8f"},
		{"%2.256Hs", "e4"}, {"%4.0Hs", "3b839e4"}, {"%1Hs", "0"},
	}
	for _, tt := range tests {
		if got := MustParse(tt.tmpl).Expand(c, nil); got != tt.want {
			t.Errorf("%q = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestHashes(t *testing.T) {
	// Vectors from Dovecot's var-expand tests (its %{value} is "example").
	c := &Context{Service: "example", Session: "other-example"}
	tests := []struct{ tmpl, want string }{
		{"%M{service}", "1a79a4d60de6718e8e5b326e338ae533"},
		{"%{md5:service}", "1a79a4d60de6718e8e5b326e338ae533"},
		{"%{sha1:service}", "c3499c2729730a7f807efb8676a92dcb6f8a3f8f"},
		{"%{sha1;truncate=12:service}", "0c34"},
		{"%{sha1;truncate=16:service}", "c349"},
		{"%{sha1;rounds=1000,salt=seawater:service}", "b515c85884f6b82dc7588279f3643a73e55d2289"},
		{"%{sha1;rounds=1000,salt=%{session}:service}", "49a598ee110af615e175f2e4511cc5d7ccff96ab"},
		{"%4.8{sha1:service}", "9c272973"},
		{"%{sha1;format=base64:service}", "w0mcJylzCn+AfvuGdqkty2+KP48="},
		{"%{sha1;format=hexuc:service}", "c3499c2729730a7f807efb8676a92dcb6f8a3f8f"}, // 2.3 bug: lower case
		{"%{size:service}", "0000000000000007"},
		{"%{sha1;salt=x,rounds=2:service}", MustParse("%{sha1;salt=x:service}").Expand(c, nil)}, // args after salt= ignored
	}
	for _, tt := range tests {
		got, err := MustParse(tt.tmpl).ExpandChecked(c, nil)
		if got != tt.want || err != nil {
			t.Errorf("%q = %q, %v; want %q", tt.tmpl, got, err, tt.want)
		}
	}
}

func TestMD4(t *testing.T) {
	// RFC 1320 test suite.
	for in, want := range map[string]string{
		"":                           "31d6cfe0d16ae931b73c59d7e0c089c0",
		"a":                          "bde52cb31de33e46245e05fbdbd6fb24",
		"abc":                        "a448017aaf21d8525fc10ae87aa6729d",
		"message digest":             "d9130a8164549fe818874806e1c7014b",
		"abcdefghijklmnopqrstuvwxyz": "d79e1c308aa5bbcdeea8ed63df412da9",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789":                   "043f8582f241db351ce627e153e7f0e4",
		"12345678901234567890123456789012345678901234567890123456789012345678901234567890": "e33b4ddc9c38f2199c3e7b164fcc0536",
	} {
		h := md4.New()
		for i := 0; i < len(in); i += 7 { // odd chunks exercise buffering
			h.Write([]byte(in[i:min(i+7, len(in))]))
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("md4(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestTruncateBits(t *testing.T) {
	tests := []struct {
		in   []byte
		bits int
		want string
	}{
		{[]byte{0xab, 0xcd, 0xef}, 0, "abcdef"},
		{[]byte{0xab, 0xcd, 0xef}, 8, "ab"},
		{[]byte{0xab, 0xcd, 0xef}, 12, "0abc"},
		{[]byte{0xab, 0xcd, 0xef}, 4, "0a"},
		{[]byte{0xab, 0xcd, 0xef}, 1, "01"},
		{[]byte{0xab, 0xcd, 0xef}, 24, "abcdef"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(TruncateBits(slices.Clone(tt.in), tt.bits)); got != tt.want {
			t.Errorf("truncate(%x, %d) = %s, want %s", tt.in, tt.bits, got, tt.want)
		}
	}
}

func TestIf(t *testing.T) {
	// The literal cases of Dovecot's var-expand-if tests.
	yes := []string{
		"1;==;1", "1;<;2", "1;<=;1", "1;<=;2", "1;>=;1", "1;!=;2",
		"a;eq;a", "a;lt;b", "a;le;a", "a;le;b", "a;ge;a", "a;ne;b",
		"a;*;a", "a;*;*a*", "a;*;*", "a;!*;b", "a;!*;*b*",
		"a;~;a", "a;~;.*a.*", "a;~;.*", "a;!~;b", "a;!~;.*b.*",
		"this is test;~;.*test", "-5;<;3", "abc;*;a?c", ";*;*",
	}
	no := []string{
		"1;==;2", "1;<;1", "1;>;1", "1;>;2", "1;>=;2", "1;!=;1",
		"a;eq;b", "a;lt;a", "a;gt;a", "a;gt;b", "a;ge;b", "a;ne;a",
		"a;*;b", "a;*;*b*", "a;!*;a", "a;!*;*a*", "a;!*;*",
		"a;~;b", "a;~;.*b.*", "a;!~;a", "a;!~;.*a.*", "a;!~;.*",
		"this is test;~;^test", ";*;?",
	}
	c := &Context{}
	for _, cond := range yes {
		if got := MustParse("%{if;"+cond+";yes;no}").Expand(c, nil); got != "yes" {
			t.Errorf("if %s: %q, want yes", cond, got)
		}
	}
	for _, cond := range no {
		if got := MustParse("%{if;"+cond+";yes;no}").Expand(c, nil); got != "no" {
			t.Errorf("if %s: %q, want no", cond, got)
		}
	}
	c = &Context{User: "alice@example.com", Service: "imap"}
	for tmpl, want := range map[string]string{
		"%{if;%u;eq;%{user};same;diff}":     "same",
		"%{if;%s;eq;imap;%Un;x}":            "ALICE",
		"%U{if;%s;eq;imap;yes;no}":          "YES",
		"%{if;%s;eq;pop3;yes}":              "",
		"%{if;a\\;b;eq;a\\;b;y;n}":          "y",
		"%{if;%{if;%s;eq;imap;t;f};eq;t;T}": "T",
	} {
		if got, err := MustParse(tmpl).ExpandChecked(c, nil); got != want || err != nil {
			t.Errorf("%s = %q, %v; want %q", tmpl, got, err, want)
		}
	}
	// Runtime failures: non-numeric operands, bad regexp from a variable.
	c.Session = "("
	for _, tmpl := range []string{"%{if;%u;==;1;a;b}", "%{if;x;~;%{session};a;b}", "%{if;x;%{session};y;a;b}"} {
		if got, err := MustParse(tmpl).ExpandChecked(c, nil); err == nil || got != "" {
			t.Errorf("%s = %q, %v; want a failure", tmpl, got, err)
		}
	}
}

func TestWildcard(t *testing.T) {
	for _, tt := range []struct {
		data, mask string
		want       bool
	}{
		{"", "", true}, {"", "*", true}, {"", "**", true}, {"", "?", false}, {"a", "", false},
		{"abc", "a*", true}, {"abc", "*c", true}, {"abc", "*b*", true}, {"abc", "a?c", true},
		{"abc", "a*d", false}, {"aXbXc", "a*b*c", true}, {"ab", "a*b*c", false},
		{"mississippi", "*sip*", true}, {"mississippi", "m*iss*ppi", true}, {"abc", "ABC", false},
	} {
		if got := wildcardMatch(tt.data, tt.mask); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.data, tt.mask, got)
		}
	}
}

func TestEscape(t *testing.T) {
	t.Setenv("AUTHD_VARS_ESC", "e'nv")
	c := fullContext()
	c.MasterUser = "m'a"
	c.LoginUser = "l'u@d'x"
	esc := func(s string) string { return "<" + s + ">" }
	tests := []struct{ tmpl, want string }{
		// escaped values
		{"%u", "<alice@example.com>"}, {"%n", "<alice>"}, {"%d", "<example.com>"}, {"%s", "<imap>"},
		{"%w", "<s3cr'et>"}, {"%m", "<PLAIN>"}, {"%{mechanism}", "<PLAIN>"}, {"%{session}", "<sess1>"},
		{"%{local_name}", "<mail.example.com>"}, {"%{client_id}", "<cid>"},
		{"%{master_user}", "<m'a>"}, {"%{auth_user}", "<m'a>"}, {"%{orig_user}", "<Alice@Example.COM>"},
		{"%{login_user}", "<l'u@d'x>"}, {"%{login_domain}", "<d'x>"},
		{"%{domain_first}", "<example.com>"}, {"%{domain_last}", "<example.com>"},
		{"%{passdb:foo}", "<bar>"}, {"%{passdb:nope:dflt}", "<dflt>"}, {"%{userdb:home}", "</var/mail/alice>"},
		// not escaped
		{"%l", "192.0.2.10"}, {"%r", "192.0.2.1"}, {"%a", "143"}, {"%p", "4242"}, {"%!", "3"},
		{"%c", "TLS"}, {"%k", "valid"}, {"%h", "/home/alice"}, {"%{real_rip}", "198.51.100.1"},
		{"%{session_pid}", "777"}, {"%%", "%"}, {"%{env:AUTHD_VARS_ESC}", "e'nv"},
		{"lit'%z", "lit'UNSUPPORTED_VARIABLE_z"},
		// escaping comes before the modifiers and feeds the hashes
		{"%Uu", "<ALICE@EXAMPLE.COM>"}, {"%2.3u", "lic"}, {"%Mn", "1e71ca81dd97f235816601712addacb3"},
		{"%{md5:username}", "1e71ca81dd97f235816601712addacb3"},
		{"/q/%d/%n", "/q/<example.com>/<alice>"},
	}
	for _, tt := range tests {
		if got := ParseLenient(tt.tmpl).Expand(c, esc); got != tt.want {
			t.Errorf("%q = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestUnknownAndFailures(t *testing.T) {
	c := &Context{User: "alice@example.com"}
	tests := []struct {
		tmpl, want string
		unknown    []string
		isUnknown  bool // ExpandError.Unknown (Dovecot 0) vs error (-1)
	}{
		{"%z", "UNSUPPORTED_VARIABLE_z", []string{"z"}, true},
		{"a%Lzb", "aUNSUPPORTED_VARIABLE_zb", []string{"z"}, true}, // no modifiers on the failure text
		{"%2.3{foo:bar}", "UNSUPPORTED_VARIABLE_foo", []string{"foo"}, true},
		{"%{}", "UNSUPPORTED_VARIABLE_", []string{""}, true},
		{"%{u}", "UNSUPPORTED_VARIABLE_u", []string{"u"}, true},
		{"%{MD5:user}", "", []string{"MD5"}, true},
		{"%{md5:nosuch}", "", []string{"nosuch"}, true},
		{"%{md5:}", "", []string{""}, true},
		{"%z%{md5;rounds=0:user}", "UNSUPPORTED_VARIABLE_z", []string{"z"}, false},
	}
	for _, tt := range tests {
		tp := ParseLenient(tt.tmpl)
		got, err := tp.ExpandChecked(c, nil)
		var ee *ExpandError
		if got != tt.want || !errors.As(err, &ee) || ee.Unknown != tt.isUnknown {
			t.Errorf("%q = %q, %#v; want %q (unknown=%v)", tt.tmpl, got, err, tt.want, tt.isUnknown)
		}
		if u := tp.Unknown(); !slices.Equal(u, tt.unknown) {
			t.Errorf("%q: Unknown() = %q, want %q", tt.tmpl, u, tt.unknown)
		}
		if got2 := tp.Expand(c, nil); got2 != got {
			t.Errorf("Expand and ExpandChecked differ: %q vs %q", got2, got)
		}
	}
	// An unknown variable inside a salt stays in the salt and does not fail.
	tp := MustParse("%{md5;salt=%q:user}")
	got, err := tp.ExpandChecked(c, nil)
	want := MustParse("%{md5;salt=UNSUPPORTED_VARIABLE_q:user}").Expand(c, nil)
	if err != nil || got != want || !slices.Equal(tp.Unknown(), []string{"q"}) {
		t.Errorf("salt with unknown: %q %v %q, want %q", got, err, tp.Unknown(), want)
	}
}

func TestParseStrict(t *testing.T) {
	bad := []string{
		"abc%", "%L", "%2.", "%{user", "x%{", "%{abc", "%{a{b}", "a%{b\\}",
		"%{md5;rounds=0:user}", "%{md5;rounds=x:user}", "%{md5;truncate=-1:user}",
		"%{md5;format=base64url:user}", "%{md5;rounds=99999999:user}",
		"%{if;a;eq}", "%{if;a;zz;b;c;d}", "%{if;a;eq;b;c;d;e}", "%{if}", "%{if;x;~;(;a;b}",
		"%99999999u", "%1.99999999u", "%{md5;salt=%:user}",
	}
	for _, s := range bad {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", s)
		} else {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("Parse(%q): error %T is not *ParseError", s, err)
			}
		}
		ParseLenient(s).Expand(&Context{}, nil) // never panics
	}
	good := []string{"%z", "%{foo}", "%{MD5:user}", "%{md5:nosuch}", "%{if;%u;==;1;a;b}", "%%", "", "%{passdb}"}
	for _, s := range good {
		if _, err := Parse(s); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
	}
	// Lenient parsing reproduces Dovecot's output for malformed input.
	c := &Context{User: "alice"}
	for tmpl, want := range map[string]string{
		"abc%": "abc", "abc%L": "abc", "abc%2.": "abc",
		"%{user":  "UNSUPPORTED_VARIABLE_{user",
		"x%{":     "xUNSUPPORTED_VARIABLE_{",
		"%{a{b}x": "UNSUPPORTED_VARIABLE_a{b}x",
	} {
		if got := ParseLenient(tmpl).Expand(c, nil); got != want {
			t.Errorf("lenient %q = %q, want %q", tmpl, got, want)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic")
		}
	}()
	MustParse("%{")
}

func TestStaticUsesString(t *testing.T) {
	for s, want := range map[string]bool{"": true, "plain": true, "50%%": true, "%u": false, "%{hostname}": false, "x%z": false} {
		if got := MustParse(s).Static(); got != want {
			t.Errorf("Static(%q) = %v", s, got)
		}
		if got := MustParse(s).String(); got != s {
			t.Errorf("String(%q) = %q", s, got)
		}
	}
	tests := []struct {
		tmpl string
		yes  []string
		no   []string
	}{
		{"%Lu", []string{"u", "user"}, []string{"n", "username", "d"}},
		{"%{local_ip}", []string{"l", "lip", "local_ip"}, []string{"r"}},
		{"%{sha256:orig_user}", []string{"orig_user", "original_user", "sha256"}, []string{"u", "md5"}},
		{"%{if;%a;==;1;%{passdb:x};b}", []string{"passdb", "a", "lport", "if"}, []string{"userdb"}},
		{"%{md5;salt=%s:user}", []string{"s", "service", "u", "md5"}, []string{"n"}},
		{"%{env:X}%{hostname}%{uid}%{gid}%{userdb:h}", []string{"env", "hostname", "uid", "gid", "userdb"}, []string{"pid"}},
		{"%!", []string{"!"}, []string{"u"}},
	}
	for _, tt := range tests {
		tp := MustParse(tt.tmpl)
		for _, n := range tt.yes {
			if !tp.Uses(n) {
				t.Errorf("%q: Uses(%q) = false", tt.tmpl, n)
			}
		}
		for _, n := range tt.no {
			if tp.Uses(n) {
				t.Errorf("%q: Uses(%q) = true", tt.tmpl, n)
			}
		}
	}
}

func TestCacheKey(t *testing.T) {
	tests := []struct{ tmpl, want string }{
		// docs/protocol.md §5.9: %n and %d together collapse to %u
		{"SELECT password FROM users WHERE userid = '%n' AND domain = '%d'", "%u"},
		{"%u", "%u"}, {"%Lu", "%u"}, {"%n", "%n"}, {"%d", "%d"}, {"%u %n %d", "%u"},
		{"%n %s", "%n\t%s"},
		{"%s %u %r", "%u\t%s\t%r"}, // table order, not text order
		{"%{user} %{service}", "%u\t%s"},
		{"%2.1Mu %-3.2Hn", "%u\t%n"},
		{"%l %{local_ip}", "%l\t%{local_ip}"}, // aliases are separate table entries
		{"%{pid} %p", "%p"},
		{"%!", "%!"},
		{"%{sha256:user}", "%{sha256:user}"},
		{"%{passdb:foo} %u", "%u\t%{passdb:foo}"},
		{"%{ldap:mail} %{ldap:mail}", "%{ldap:mail}\t%{ldap:mail}"}, // not de-duplicated, as in Dovecot
		{"(&(objectClass=posixAccount)(uid=%u))", "%u"},
		{"%{real_rip} %{master_user} %{orig_user}", "%{real_rip}\t%{master_user}\t%{orig_user}"},
		{"50%% %u", "%u\t%%"},
		{"%z %u", "%u\t%z"},
		{"%{u}", "%u"}, // a one-letter long key counts as the short key
		{"%{} %u", ""}, // a broken expression ends the scan
		{"%{hostname}", "%{hostname}"},
		{"plain", ""}, {"", ""},
	}
	for _, tt := range tests {
		if got := ParseLenient(tt.tmpl).CacheKey(); got != tt.want {
			t.Errorf("CacheKey(%q) = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
	k := CacheKeyOf(MustParse("/etc/%d/passwd"), MustParse("SELECT * WHERE u='%n' AND s='%s'"), nil)
	if k.String() != "%u\t%s" {
		t.Errorf("CacheKeyOf = %q", k.String())
	}
	if got := CacheKeyOf().String(); got != "" {
		t.Errorf("CacheKeyOf() = %q", got)
	}
}

func TestExpandCacheKey(t *testing.T) {
	c := &Context{User: "alice@example.com", Service: "imap", PassdbID: 3}
	key := CacheKeyOf(MustParse("SELECT pw FROM u WHERE user='%u'"))
	if got := key.ExpandCacheKey(c, false); got != "P3\talice@example.com" {
		t.Errorf("passdb key %q", got)
	}
	if got := key.ExpandCacheKey(c, true); got != "U3\talice@example.com" {
		t.Errorf("userdb key %q", got)
	}
	c.MasterUser = "ad\tmin"
	c.User = "a\tb\nc\x01"
	key = CacheKeyOf(MustParse("%n %d %s"))
	if got := key.ExpandCacheKey(c, false); got != "P3+ad\x01tmin\ta\x01tb\x01nc\x011\timap" {
		t.Errorf("escaped key %q", got)
	}
}

func TestParseFields(t *testing.T) {
	fs, err := ParseFields("home=/var/mail/%d/%n  uid=vmail quota_rule=*:storage=1G nologin key:protected=v key2:remove x=a=b :protected=1 :remove")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		key, val          string
		protected, remove bool
	}
	wants := []want{
		{"home", "/var/mail/example.com/alice", false, false},
		{"uid", "vmail", false, false},
		{"quota_rule", "*:storage=1G", false, false},
		{"nologin", "", false, false},
		{"key", "v", true, false},
		{"key2", "", false, true},
		{"x", "a=b", false, false},
		{":protected", "1", false, false}, // the suffix needs a name before it
		{":remove", "", false, false},
	}
	if len(fs) != len(wants) {
		t.Fatalf("got %d fields: %+v", len(fs), fs)
	}
	c := &Context{User: "alice@example.com"}
	for i, w := range wants {
		f := fs[i]
		if f.Key != w.key || f.Value.Expand(c, nil) != w.val || f.Protected != w.protected || f.Remove != w.remove {
			t.Errorf("field %d = {%q %q %v %v}, want %+v", i, f.Key, f.Value.Expand(c, nil), f.Protected, f.Remove, w)
		}
	}
	if got := fs[4].String(); got != "key:protected=v" {
		t.Errorf("String() = %q", got)
	}
	if got := fs[3].String(); got != "nologin" {
		t.Errorf("String() = %q", got)
	}
	if fs, err := ParseFields("   "); err != nil || len(fs) != 0 {
		t.Errorf("blank: %v %v", fs, err)
	}
	for _, s := range []string{"=x", "a=1 =2", "home=%{", "a=%"} {
		if _, err := ParseFields(s); err == nil {
			t.Errorf("ParseFields(%q) succeeded", s)
		}
	}
	// Only spaces separate entries (Dovecot splits on ' ' alone).
	if fs, _ := ParseFields("a=x\ty b=z"); len(fs) != 2 || fs[0].Value.String() != "x\ty" {
		t.Errorf("tab handling: %+v", fs)
	}
}

func TestProcessValues(t *testing.T) {
	withProcess(t, goldenProc{Hostname: "h.example", UID: "12", GID: "34"})
	t.Setenv("AUTHD_VARS_X", "v")
	got := MustParse("%{hostname}|%{uid}|%{gid}|%{env:AUTHD_VARS_X}|%{env:AUTHD_VARS_UNSET_X}|%{pid}").Expand(&Context{ClientPID: "9"}, nil)
	if got != "h.example|12|34|v||9" {
		t.Errorf("got %q", got)
	}
}

func TestAppendExpandNoAliasing(t *testing.T) {
	// Modifiers work in place on dst's tail; earlier bytes must survive.
	c := &Context{User: "A.B@C.D", LocalPort: "7", Session: `q"\`}
	tp := MustParse("[%Lu][%Du][%E{session}][%05a][%-2.2Mu][%Ru]")
	want := tp.Expand(c, nil)
	prefix := []byte("prefix:")
	buf := make([]byte, len(prefix), len(prefix)+1) // force reallocation mid-way
	copy(buf, prefix)
	if got := string(tp.AppendExpand(buf, c, nil)); got != "prefix:"+want || !strings.HasPrefix(want, "[a.b@c.d][A,dc=B@C,dc=D][q\\\"\\\\][00007]") {
		t.Errorf("got %q (want prefix + %q)", got, want)
	}
}

func TestSplitFieldKey(t *testing.T) {
	for key, want := range map[string][3]any{
		"home": {"home", false, false}, "home:protected": {"home", true, false},
		"home:remove": {"home", false, true}, ":protected": {":protected", false, false},
		":remove": {":remove", false, false}, "a:remove:protected": {"a:remove", true, false},
	} {
		n, p, r := SplitFieldKey(key)
		if n != want[0] || p != want[1] || r != want[2] {
			t.Errorf("SplitFieldKey(%q) = %q %v %v", key, n, p, r)
		}
	}
}

func TestConcurrentExpand(t *testing.T) {
	// Templates are immutable after parsing and shared by all requests.
	tps := []*Template{
		MustParse("%Lu/%2.1Mn"), MustParse("%{sha1;rounds=2,salt=%d:user}"),
		MustParse("%{if;%n;~;^a;%{md5:user};x}"), MustParse("%{if;%n;~;%{session};y;n}"),
	}
	want := make([]string, len(tps))
	c := &Context{User: "alice@example.com", Session: "^al"}
	for i, tp := range tps {
		want[i] = tp.Expand(c, nil)
	}
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- true }()
			c := &Context{User: "alice@example.com", Session: "^al"}
			for n := 0; n < 200; n++ {
				for i, tp := range tps {
					if got := tp.Expand(c, nil); got != want[i] {
						t.Errorf("concurrent %q = %q, want %q", tp, got, want[i])
						return
					}
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
}
