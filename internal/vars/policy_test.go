package vars

import (
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

// The auth policy variables exist only in templates from ParsePolicy, as
// %{hashed_password} and %{requested_username} exist only in Dovecot's
// auth-policy.c expansion table.
func TestPolicyVariables(t *testing.T) {
	c := &Context{User: "master@example.com", RequestedUsername: `Al"ice@example.com`, HashedPassword: "0a1b"}
	quote := func(s string) string { return strings.ReplaceAll(s, `"`, `\"`) }
	cases := []struct{ tmpl, want string }{
		{"%{requested_username}", `Al\"ice@example.com`},
		{"%{hashed_password}", "0a1b"},
		{"%{requested_username}/%u", `Al\"ice@example.com/master@example.com`},
		{"%L{requested_username}", `al\"ice@example.com`},
		{"%3{hashed_password}", "0a1"},
		{"%{md5:requested_username}", "cc31647eccf29124d93f57a7d9e019c9"}, // md5 of the escaped value, as Dovecot hashes it
	}
	for _, tc := range cases {
		tmpl, err := ParsePolicy(tc.tmpl)
		if err != nil {
			t.Fatalf("ParsePolicy(%q): %v", tc.tmpl, err)
		}
		if u := tmpl.Unknown(); len(u) > 0 {
			t.Errorf("ParsePolicy(%q): unknown %v", tc.tmpl, u)
		}
		if got := tmpl.Expand(c, quote); got != tc.want {
			t.Errorf("%q = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, name := range []string{"hashed_password", "requested_username"} {
		tmpl, err := Parse("%{" + name + "}")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tmpl.Unknown(), []string{name}) {
			t.Errorf("Parse: %%{%s} should be unknown outside policy templates, got %v", name, tmpl.Unknown())
		}
		ptmpl, _ := ParsePolicy("x%{" + name + "}")
		if !ptmpl.Uses(name) || ptmpl.Uses("user") {
			t.Errorf("Uses(%s) wrong for %q", name, ptmpl)
		}
	}
}

func TestHashMethod(t *testing.T) {
	for _, name := range []string{"md4", "md5", "sha1", "sha256", "sha384", "sha512", "sha3-256", "sha3-512", "size"} {
		newHash, ok := HashMethod(name)
		if !ok {
			t.Fatalf("%s: unknown", name)
		}
		if newHash().Size() == 0 {
			t.Errorf("%s: zero size", name)
		}
	}
	for _, name := range []string{"SHA256", "pkcs5", "", "sha224"} {
		if _, ok := HashMethod(name); ok {
			t.Errorf("%q: known, want unknown (Dovecot's hash_method_lookup has no such method)", name)
		}
	}
	h, _ := HashMethod("sha256")
	d := h()
	d.Write([]byte("abc"))
	if got := hex.EncodeToString(d.Sum(nil)); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sha256(abc) = %s", got)
	}
}
