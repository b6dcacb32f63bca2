package schemes

import (
	"strings"
	"testing"
)

// Shape names a stored value's cost without doing the work, and two values
// with the same parameters have the same shape.
func TestShape(t *testing.T) {
	v := NewVerifier(Limits{})
	calls := 0
	v.hooks.work = func(string) error { calls++; return nil }
	gen := func(scheme string, rounds int) string {
		t.Helper()
		s, err := Generate(scheme, []byte("pw"), "u", rounds)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		scheme, data, want string
	}{
		{"SHA512-CRYPT", gen("SHA512-CRYPT", 0), "SHA-CRYPT rounds=5000"},
		{"SHA512-CRYPT", gen("SHA512-CRYPT", 20000), "SHA-CRYPT rounds=20000"},
		{"BLF-CRYPT", gen("BLF-CRYPT", 6), "BLF-CRYPT cost=6"},
		{"PLAIN", "secret", "PLAIN"},
		{"SSHA", gen("SSHA", 0), "SSHA"},
		{"CRYPT", strings.Replace(gen("BLF-CRYPT", 4), "$04$", "$31$", 1), "BLF-CRYPT cost=31"},
		{"CRYPT", "$6$rounds=999999999$salt$" + strings.Repeat("a", 86), "SHA-CRYPT rounds=999999999"},
	}
	for _, c := range cases {
		got, err := v.Shape(c.scheme, c.data)
		if err != nil || got != c.want {
			t.Errorf("Shape(%s, %.20s…) = %q, %v; want %q", c.scheme, c.data, got, err, c.want)
		}
	}
	if calls != 0 {
		t.Errorf("Shape hashed %d times", calls)
	}
	if a, _ := v.Shape("SHA512-CRYPT", gen("SHA512-CRYPT", 0)); a != "SHA-CRYPT rounds=5000" {
		t.Errorf("two default SHA512-CRYPT values differ in shape: %q", a)
	}
	if _, err := v.Shape("NOSUCH", "x"); err == nil {
		t.Error("an unknown scheme has a shape")
	}
}
