package schemes

import "testing"

// TestOTPParsing pins the parser to what `doveadm pw -t` answered for
// these stored values with password "secret" (Dovecot 2.3.19.1).
func TestOTPParsing(t *testing.T) {
	const h = "06121006d5c5c61b"
	for _, c := range []struct{ data, want string }{
		{"sha1 1024 1e0e05c1a0e5fb06 " + h, "true"},
		{"sha1 1024 1e0e05c1a0e5fb06 06121006D5C5C61B", "true"},
		{"sha1 1024 1E0E05C1A0E5FB06 " + h, "true"},
		{"sha1  1024 1e0e05c1a0e5fb06 " + h, "error"},
		{"SHA1 1024 1e0e05c1a0e5fb06 " + h, "error"},
		{"Sha1 1024 1e0e05c1a0e5fb06 " + h, "error"},
		{"sha1 01024 1e0e05c1a0e5fb06 " + h, "false"},
		{"sha1 1024 1e0e05c1a0e5fb06 " + h + " extra", "false"},
		{"sha1 1024 1e0e05c1a0e5fb06a " + h, "error"},
		{"sha1 1024 1e0e05c1a0e5fb06 06121006d5c5c61", "error"},
		{" sha1 1024 1e0e05c1a0e5fb06 " + h, "error"},
		{"sha1 1024 1e0e05c1a0e5fb06 " + h + " ", "false"},
		{"sha1\t1024 1e0e05c1a0e5fb06 " + h, "false"},
		{"sha1 1024 1e0e05c1-0e5fb06 " + h, "error"},
		{"sha1 1024  1e0e05c1a0e5fb06 " + h, "false"},
		{"sha1 1024 1e0e05c1a0e5fb06  " + h, "false"},
		{"sha1 1024 1e0e05c1a0e5fb06\t" + h, "error"},
		{"sha1 1024 1e0e05c1a0e5fb06 " + h + "ff", "false"},
		{"sha1 1024 1e0e05c1a0e5fb06 0612 1006d5c5c61b", "false"},
		{"sha1 +1024 1e0e05c1a0e5fb06 " + h, "error"},
		{"sha1 99999999999 1e0e05c1a0e5fb06 " + h, "error"},
		{"sha1 1024 1e0e05c1a0e5fb06 0x121006d5c5c61b", "error"},
	} {
		ok, err := Verify("OTP", c.data, []byte("secret"), "")
		if got := verdictOf(ok, err); got != c.want {
			t.Errorf("%q: got %s (%v), doveadm says %s", c.data, got, err, c.want)
		}
	}
}
