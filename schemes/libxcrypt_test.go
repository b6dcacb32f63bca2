package schemes

import (
	"encoding/json"
	"os"
	"testing"
)

// TestLibxcryptVectors verifies hashes produced by the system crypt(3)
// (libxcrypt 4.4.33; testdata/schemes/gen_libxcrypt.py) under {CRYPT}:
// yescrypt flavors (RW, WORM, classic) with various N, r, p, t and salt
// lengths, $7$ scrypt, NetBSD sha1crypt, SHA-crypt, MD5-crypt, DES,
// bigcrypt, BSDi, NT, bcrypt, gost-yescrypt ($gy$) and
// Sun MD5 ($md5). Each must match its password and not a
// changed one.
func TestLibxcryptVectors(t *testing.T) {
	b, err := os.ReadFile("../testdata/schemes/libxcrypt.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct{ Password, Hash string }
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		ok, err := Verify("CRYPT", v.Hash, []byte(v.Password), "")
		if !ok || err != nil {
			t.Errorf("%d: %q does not verify its password (len %d): %v", i, v.Hash, len(v.Password), err)
			continue
		}
		if i%3 == 0 { // a wrong password for a third of them keeps the test quick
			wrong := []byte("X" + v.Password)
			if ok, err := Verify("CRYPT", v.Hash, wrong, ""); ok || err != nil {
				t.Errorf("%d: %q accepts a wrong password: %v", i, v.Hash, err)
			}
		}
	}
	t.Logf("%d libxcrypt hashes verified", len(vs))
}
