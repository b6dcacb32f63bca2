package schemes

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestBcryptVariants checks 8-bit passwords against crypt_blowfish output
// (testdata/schemes/bcrypt.json, from libxcrypt) for every minor version:
// $2b$/$2y$ are plain bcrypt, $2x$ the sign-extension-bug mode (computed
// via bcryptKey), and $2a$ is plain bcrypt except for keys hit by
// crypt_blowfish's countermeasure, which authd reports as ErrUnsupported.
func TestBcryptVariants(t *testing.T) {
	b, err := os.ReadFile("../testdata/schemes/bcrypt.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []struct {
		PasswordHex    string `json:"password_hex"`
		Hash           string `json:"hash"`
		XPrefixMatches bool   `json:"x_prefix_matches"`
	}
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	unsupported := 0
	for _, v := range vs {
		pw, _ := hex.DecodeString(v.PasswordHex)
		ok, err := Verify("BLF-CRYPT", v.Hash, pw, "")
		if errors.Is(err, ErrUnsupported) && strings.HasPrefix(v.Hash, "$2a$") {
			unsupported++
			continue
		}
		if !ok || err != nil {
			t.Errorf("%s with %x: %v %v", v.Hash, pw, ok, err)
		}
		wrong := append([]byte{'X'}, pw...)
		if ok, err := Verify("BLF-CRYPT", v.Hash, wrong, ""); ok != v.XPrefixMatches || err != nil {
			t.Errorf("%s with \"X\"+password: %v %v, crypt_blowfish says %v", v.Hash, ok, err, v.XPrefixMatches)
		}
	}
	t.Logf("%d bcrypt vectors, %d $2a$ countermeasure cases reported as unsupported", len(vs), unsupported)
	if unsupported == 0 || unsupported > 4 {
		t.Errorf("expected a few countermeasure cases (\\xff\\xa3-style keys), got %d", unsupported)
	}
}

// TestBcrypt72 checks that only the first 72 bytes count (crypt_blowfish
// and Dovecot truncate; x/crypto's GenerateFromPassword would refuse).
func TestBcrypt72(t *testing.T) {
	long := []byte(strings.Repeat("0123456789", 10))
	data, err := Generate("BLF-CRYPT", long, "", 4)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify("BLF-CRYPT", data, long[:72], ""); !ok || err != nil {
		t.Fatalf("first 72 bytes: %v %v", ok, err)
	}
	if ok, _ := Verify("BLF-CRYPT", data, long[:71], ""); ok {
		t.Fatal("71 bytes accepted")
	}
}
