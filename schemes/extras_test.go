package schemes

import (
	"context"
	"crypto/des"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Reference values computed with Python's hashlib.pbkdf2_hmac (an
// independent implementation) for password "secret" and salt bytes 0..15
// (0..63 for the 389-DS blob, 0..23 for the 389-DS standard-base64 form).
func TestLDAPPBKDF2Formats(t *testing.T) {
	cases := []struct{ scheme, data string }{
		{"PBKDF2-SHA1", "10000$AAECAwQFBgcICQoLDA0ODw$w7tX5nEMoIv2c5pL4bh51Yovf50"},
		{"PBKDF2", "10000$AAECAwQFBgcICQoLDA0ODw$w7tX5nEMoIv2c5pL4bh51Yovf50"}, // OpenLDAP's {PBKDF2} = SHA-1
		{"PBKDF2-SHA256", "10000$AAECAwQFBgcICQoLDA0ODw$OImOyGKQvA8WMIN8WwuclUZFDykpCY/RxWOLBTOe8fg"},
		{"PBKDF2-SHA512", "10000$AAECAwQFBgcICQoLDA0ODw$s1qOkFay1DbcR0sablkjBgtOqf1IcoQVkkK1uzR9LdXA0A7SkKhkz0j9Li48.pDMKueSh3UUQNkgDDksLeAu.Q"},
		// 389-DS pwdchan writes standard base64 with padding.
		{"PBKDF2-SHA256", "100000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYX$ZKxFQTebRNXSryZkz2V6yosnLrvS0og1mDO/DW9e9Yw="},
		{"PBKDF2_SHA256", "AAAIAAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj+B9XeOejtyt4BTjI46i3LtcyOiILFyqJgSilUxXiMS6q73bHB/+ZX8IITSt36w6FEBAtkpXO02/zpH0rHl4YSdeZ5hjbd9nDYq0Avw9pABNQVUEj7GBo+Dt2J6hvxICY6SNDtgyGQljMTA64Cc4E6rd/w3uDixLyqzBEc+Ba4lSmEBR6oQsFCJ2fpEquMVx7EG7YG7PZesWyzC+/itvph53qwWtea21d4DWq+gi+HjlMNggdZ5ycW4VWdnfqvWWsKPbrvrvlPNIIWUdoQUFTVIdMJhjnTZ5AeiM9iXBM3G4qbPigqPZyw922t+6ygi+ignwkbT2jWrtAx+Q87w/wL8"},
	}
	for _, c := range cases {
		if ok, err := Verify(c.scheme, c.data, []byte("secret"), ""); !ok || err != nil {
			t.Errorf("%s %q: %v %v", c.scheme, c.data, ok, err)
		}
		if ok, err := Verify(c.scheme, c.data, []byte("Secret"), ""); ok || err != nil {
			t.Errorf("%s accepts a wrong password: %v", c.scheme, err)
		}
		if !IsExtension(c.scheme) && c.scheme != "PBKDF2" {
			t.Errorf("%s should be an extension", c.scheme)
		}
	}
	for _, bad := range []string{"10000$AAECAwQFBgcICQoLDA0ODw", "x$a$b", "0$AA$AAAAAAAAAAAAAAAAAAAAAA", "10000$!!$AAAA"} {
		if _, err := Verify("PBKDF2-SHA256", bad, []byte("secret"), ""); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", bad, err)
		}
	}
}

func TestArgon2Extensions(t *testing.T) {
	phc := "$argon2id$v=19$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M"
	for _, c := range []struct{ scheme, data string }{
		{"ARGON2", phc},       // Dovecot 2.4 / 389-DS name
		{"ARGON2I", phc},      // variant read from the string, as libsodium does
		{"CRYPT", phc},        // bare PHC value under the default crypt scheme
		{"SHA512-CRYPT", phc}, // any crypt-family default
		// t=1 argon2i (below libsodium's generation minimum) still verifies
		// with doveadm pw -t; made with x/crypto/argon2.
		{"ARGON2I", "$argon2i$v=19$m=4096,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$9CL40rIhJ0C4mJIRHXf5BycankHlJIfcN93EQj3VVYk"},
		{"ARGON2I", "$argon2id$v=19$m=4096,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$BnOHU0YDNJJVGAmPZbnliZ/dtQxhBHwxPBOFCjkAjW0"},
	} {
		if ok, err := Verify(c.scheme, c.data, []byte("secret"), ""); !ok || err != nil {
			t.Errorf("%s: %v %v", c.scheme, ok, err)
		}
	}
	scheme, data := SplitDefault(phc, "CRYPT")
	if ok, err := Verify(scheme, data, []byte("secret"), ""); !ok || err != nil {
		t.Errorf("bare PHC through SplitDefault: %v %v", ok, err)
	}
	// libsodium refuses these, so Dovecot reports a mismatch.
	for _, s := range []string{
		"$argon2d$v=19$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M",
		"$argon2id$v=16$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M",
		"$argon2id$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M",
		"$argon2id$v=19$m=065536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M",
		"$argon2id$v=19$m=4,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M",
	} {
		if ok, err := Verify("ARGON2ID", s, []byte("secret"), ""); ok || err != nil {
			t.Errorf("%q: %v %v, want mismatch", s, ok, err)
		}
	}
}

// TestMemoryBudget: a value needing more memory than the whole budget is
// over budget (param "memory"), whichever memory-hard scheme it is.
func TestMemoryBudget(t *testing.T) {
	v := NewVerifier(Limits{MemoryBudgetKiB: 1024})
	for _, c := range []struct{ scheme, data, family string }{
		{"ARGON2ID", "$argon2id$v=19$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2},
		{"CRYPT", "$y$j9T$7nFfsuDX1IYef27py1qD1/$d9HsuoDgzDiisW7FqrP5lA5lbXlqtdy1u/Cgu6UVrv9", budgetYescrypt},
	} {
		_, err := v.Verify(context.Background(), c.scheme, c.data, []byte("secret"), "")
		var ob *OverBudgetError
		if !errors.Is(err, ErrOverBudget) || !errors.As(err, &ob) || ob.Scheme != c.family || ob.Param != "memory" || ob.Limit != 1024 {
			t.Errorf("%s: want the memory over budget, got %v", c.family, err)
		}
	}
}

// TestDESCoreMatchesCryptoDES: with a zero salt the hand-written DES is
// plain DES, so it must agree with crypto/des.
func TestDESCoreMatchesCryptoDES(t *testing.T) {
	for i := 0; i < 200; i++ {
		var kb, pb [8]byte
		_, _ = rand.Read(kb[:])
		_, _ = rand.Read(pb[:])
		c, err := des.NewCipher(kb[:])
		if err != nil {
			t.Fatal(err)
		}
		var want [8]byte
		c.Encrypt(want[:], pb[:])
		ks := desKeySchedule(binary.BigEndian.Uint64(kb[:]))
		if got := desEncrypt(&ks, 0, binary.BigEndian.Uint64(pb[:]), 1); got != binary.BigEndian.Uint64(want[:]) {
			t.Fatalf("key %x block %x: got %x want %x", kb, pb, got, want)
		}
	}
}

func TestDESCryptRules(t *testing.T) {
	// Only 8 characters, 7 bits each, count (§3 crypt family).
	if ok, _ := Verify("CRYPT", "QVQeX9.zGiyEM", []byte("secret"), ""); !ok {
		t.Fatal("DES vector")
	}
	data, _ := Generate("DES-CRYPT", []byte("12345678"), "", 0)
	for _, pw := range []string{"12345678", "123456789", "12345678 and more"} {
		if ok, _ := Verify("DES-CRYPT", data, []byte(pw), ""); !ok {
			t.Errorf("%q should match the 8-character prefix", pw)
		}
	}
	// libxcrypt refuses bad settings and ≥ 512-byte passwords: mismatch.
	for _, s := range []string{"a!bcdefghijkl", "*", "!$6$abc$def", "$apr1$abc$def", "a", "ab:cdefghijk"} {
		if ok, err := Verify("CRYPT", s, []byte("secret"), ""); ok || err != nil {
			t.Errorf("%q: %v %v", s, ok, err)
		}
	}
	long := []byte(strings.Repeat("a", 512))
	if ok, err := Verify("CRYPT", "$6$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/r6niK9YB2mdvgY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1", long, ""); ok || err != nil {
		t.Errorf("512-byte password: %v %v", ok, err)
	}
}

func TestSplit(t *testing.T) {
	cases := []struct{ raw, scheme, data, strictScheme, strictData string }{
		{"{SHA}abc", "SHA", "abc", "SHA", "abc"},
		{"{ssha.hex}ab", "ssha.hex", "ab", "ssha.hex", "ab"},
		{"$1$salt$hash", "MD5-CRYPT", "$1$salt$hash", "", "$1$salt$hash"},
		{"$1$salt$hash$junk", "MD5-CRYPT", "$1$salt$hash", "", "$1$salt$hash$junk"},
		{"$1$salt", "", "$1$salt", "", "$1$salt"},
		{"{half-open", "", "{half-open", "", "{half-open"},
		{"{}secret", "{}", "secret", "{}", "secret"},
		{"plain", "", "plain", "", "plain"},
		{"", "", "", "", ""},
		{"{A}{B}c", "A", "{B}c", "A", "{B}c"},
	}
	for _, c := range cases {
		if s, d := Split(c.raw); s != c.scheme || d != c.data {
			t.Errorf("Split(%q) = %q, %q", c.raw, s, d)
		}
		if s, d := SplitStrict(c.raw); s != c.strictScheme || d != c.strictData {
			t.Errorf("SplitStrict(%q) = %q, %q", c.raw, s, d)
		}
	}
	if _, err := Verify("{}", "secret", []byte("secret"), ""); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("{} scheme: %v", err)
	}
}

func TestNamesAndList(t *testing.T) {
	l := List()
	if len(l) != 37 || l[0] != "SHA1" || l[30] != "LDAP-MD5" {
		t.Fatalf("List() = %v", l)
	}
	seen := map[string]bool{}
	for i, n := range l {
		if seen[n] || !Known(n) || (i < 31) == IsExtension(n) {
			t.Errorf("%s: duplicate, unknown or misclassified", n)
		}
		seen[n] = true
		if c, ok := Canonical(strings.ToLower(n)); !ok || c != n {
			t.Errorf("Canonical(%q) = %q", strings.ToLower(n), c)
		}
	}
	if len(seen) != len(registry) {
		t.Errorf("List has %d names, registry %d", len(seen), len(registry))
	}
	for _, n := range []string{"SHA.XYZ", "", "{}", "NTLM", "LANMAN", "RPA", "SKEY", strings.Repeat("A", 100)} {
		if Known(n) {
			t.Errorf("Known(%q)", n)
		}
	}
	if c, ok := Canonical("ssha256.base64"); !ok || c != "SSHA256.BASE64" {
		t.Errorf("Canonical suffix: %q", c)
	}
}

func TestNULInPassword(t *testing.T) {
	if ok, err := Verify("PLAIN", "a\x00b", []byte("a\x00b"), ""); ok || err != nil {
		t.Errorf("NUL: %v %v", ok, err)
	}
	if _, err := Generate("PLAIN", []byte("a\x00b"), "", 0); err == nil {
		t.Error("Generate accepted a NUL")
	}
}

func TestPlainTruncEdges(t *testing.T) {
	for _, c := range []struct {
		data, pw string
		want     string
	}{
		{"0-", "anything", "error"},
		{"-", "", "error"},
		{"x-secret", "secret", "error"},
		{"-secret", "secret", "true"},
		{"99999999999999999999-abc", "abc", "true"},
	} {
		ok, err := Verify("PLAIN-TRUNC", c.data, []byte(c.pw), "")
		if got := verdictOf(ok, err); got != c.want {
			t.Errorf("%q/%q: %s (%v), want %s", c.data, c.pw, got, err, c.want)
		}
	}
}

// TestPlainTruncLengthDigits: a length prefix too long to be a number is
// still checked to be digits throughout.
func TestPlainTruncLengthDigits(t *testing.T) {
	for _, data := range []string{"99999999999999999999x-text", "1x-text"} {
		if _, err := Verify("PLAIN-TRUNC", data, []byte("text"), ""); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: want ErrMalformed, got %v", data, err)
		}
	}
	if ok, err := Verify("PLAIN-TRUNC", "99999999999999999999-text", []byte("text"), ""); !ok || err != nil {
		t.Errorf("huge length: %v %v, want the whole text compared", ok, err)
	}
}
