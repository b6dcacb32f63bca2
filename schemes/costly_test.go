package schemes_test

import (
	"testing"

	"github.com/authd-project/authd/schemes"
)

func TestCostly(t *testing.T) {
	for name, want := range map[string]bool{
		"SHA512-CRYPT": true, "sha256-crypt": true, "CRYPT": true, "BLF-CRYPT": true,
		"MD5-CRYPT": true, "ARGON2ID": true, "PBKDF2": true, "SCRAM-SHA-256": true,
		"SSHA": false, "ssha512.b64": false, "SHA256.HEX": false, "PLAIN": false,
		"CRAM-MD5": false, "DES-CRYPT": false, "NOPE": false, "SSHA.NOPE": false,
	} {
		if got := schemes.Costly(name); got != want {
			t.Errorf("Costly(%q) = %v, want %v", name, got, want)
		}
	}
}
