package schemes

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// maxKDFIterations bounds the iteration counts authd generates for PBKDF2
// and SCRAM values (authd pw -r). Verification has its own, configurable
// bounds (Limits): a stored count can be anything.
const maxKDFIterations = 1 << 24

func pbkdf2Key(h func() hash.Hash, pw, salt []byte, iter, size int) ([]byte, error) {
	k, err := pbkdf2.Key(h, string(pw), salt, iter, size)
	if err != nil {
		return nil, fmt.Errorf("%w: pbkdf2: %v", ErrMalformed, err)
	}
	return k, nil
}

// parseUintStrict parses a non-empty string of ASCII digits (Dovecot's
// str_to_uint: no sign, no spaces).
func parseUintStrict(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// verifyPBKDF2 is Dovecot's PBKDF2 (§3 "PBKDF2"): "$1$<salt>$<rounds>$<40
// hex>", PBKDF2-HMAC-SHA1 over the salt text as written. As an authd
// extension, a value in OpenLDAP's form ("<rounds>$<ab64 salt>$<ab64 dk>",
// which OpenLDAP and 389-DS call {PBKDF2}) is accepted too; the two cannot
// be confused because Dovecot's starts with '$'.
func verifyPBKDF2(c call, raw string, pw []byte, _ string) (bool, error) {
	if raw != "" && raw[0] >= '0' && raw[0] <= '9' {
		return verifyLDAPPBKDF2(c, "PBKDF2", sha1.New, raw, pw)
	}
	salt, rounds, want, err := parsePBKDF2(raw)
	if err != nil {
		return false, err
	}
	if err := c.beginPBKDF2(rounds, len(want), sha1.Size); err != nil {
		return false, err
	}
	got, err := pbkdf2Key(sha1.New, pw, []byte(salt), int(rounds), sha1.Size)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// beginPBKDF2 checks a stored PBKDF2 iteration count against
// Limits.PBKDF2MaxIterations and starts the work. PBKDF2 runs the
// iterations once per hash-sized block of output, so the count checked is
// iterations × blocks (a 256-byte SHA-256 output costs eight times its
// iteration count).
func (c call) beginPBKDF2(iter uint64, outLen, hashLen int) error {
	blocks := uint64((outLen + hashLen - 1) / hashLen)
	if err := c.within(budgetPBKDF2, bound{"iterations", mulSat(iter, blocks), uint64(c.limits().PBKDF2MaxIterations)}); err != nil {
		return err
	}
	return c.begin(budgetPBKDF2)
}

// parsePBKDF2 splits Dovecot's "$1$<salt>$<rounds>$<40 hex>". The rounds
// are any positive count; the caller checks them against its limits.
func parsePBKDF2(raw string) (salt string, rounds uint64, want []byte, err error) {
	f := strings.Split(raw, "$")
	if len(f) != 5 || f[0] != "" {
		return "", 0, nil, fmt.Errorf("%w: invalid PBKDF2 passdb entry format", ErrMalformed)
	}
	if f[1] != "1" {
		return "", 0, nil, fmt.Errorf("%w: invalid PBKDF2 passdb entry prefix", ErrMalformed)
	}
	n, ok := parseUintStrict(f[3])
	if !ok || n == 0 {
		return "", 0, nil, fmt.Errorf("%w: invalid PBKDF2 passdb entry format", ErrMalformed)
	}
	want, err = hex.DecodeString(f[4])
	if err != nil || len(want) != sha1.Size {
		return "", 0, nil, fmt.Errorf("%w: PBKDF2 hash not 160bit hex-encoded", ErrMalformed)
	}
	return f[2], n, want, nil
}

// generatePBKDF2 writes Dovecot's format with a 16-character salt and 5000
// rounds unless rounds is given.
func generatePBKDF2(pw []byte, _ string, rounds int) (string, error) {
	if rounds == 0 {
		rounds = 5000
	}
	if rounds > maxKDFIterations {
		return "", fmt.Errorf("schemes: PBKDF2 rounds must be at most %d", maxKDFIterations)
	}
	salt := randomCryptSalt(16)
	sum, err := pbkdf2Key(sha1.New, pw, []byte(salt), rounds, sha1.Size)
	if err != nil {
		return "", err
	}
	return "$1$" + salt + "$" + strconv.Itoa(rounds) + "$" + hex.EncodeToString(sum), nil
}

// OpenLDAP pw-pbkdf2 / 389-DS pwdchan: "<rounds>$<salt>$<dk>". OpenLDAP
// writes passlib's "adapted base64" ('.' for '+', no padding); 389-DS
// writes standard base64 with padding and reads both. Both are read here.

const ldapPBKDF2DefaultRounds = 10000 // OpenLDAP pw-pbkdf2's default

func decodeAB64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.ReplaceAll(s, ".", "+"), "=")
	return base64.RawStdEncoding.DecodeString(s)
}

func encodeAB64(b []byte) string {
	return strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(b), "+", ".")
}

func verifyLDAPPBKDF2(c call, name string, h func() hash.Hash, raw string, pw []byte) (bool, error) {
	rounds, salt, want, err := parseLDAPPBKDF2(name, raw)
	if err != nil {
		return false, err
	}
	if err := c.beginPBKDF2(rounds, len(want), h().Size()); err != nil {
		return false, err
	}
	got, err := pbkdf2Key(h, pw, salt, int(rounds), len(want))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// parseLDAPPBKDF2 splits "<rounds>$<salt>$<dk>" (any positive rounds).
func parseLDAPPBKDF2(name, raw string) (rounds uint64, salt, want []byte, err error) {
	f := strings.Split(raw, "$")
	if len(f) != 3 {
		return 0, nil, nil, fmt.Errorf("%w: %s: want <rounds>$<salt>$<hash>", ErrMalformed, name)
	}
	n, ok := parseUintStrict(f[0])
	if !ok || n == 0 {
		return 0, nil, nil, fmt.Errorf("%w: %s: bad rounds", ErrMalformed, name)
	}
	salt, err1 := decodeAB64(f[1])
	want, err2 := decodeAB64(f[2])
	if err1 != nil || err2 != nil || len(want) < 16 || len(want) > 1024 {
		return 0, nil, nil, fmt.Errorf("%w: %s: bad salt or hash encoding", ErrMalformed, name)
	}
	return n, salt, want, nil
}

func generateLDAPPBKDF2(h func() hash.Hash, pw []byte, rounds int) (string, error) {
	if rounds == 0 {
		rounds = ldapPBKDF2DefaultRounds
	}
	if rounds > maxKDFIterations {
		return "", fmt.Errorf("schemes: PBKDF2 rounds must be at most %d", maxKDFIterations)
	}
	salt := randomBytes(16)
	sum, err := pbkdf2Key(h, pw, salt, rounds, h().Size())
	if err != nil {
		return "", err
	}
	return strconv.Itoa(rounds) + "$" + encodeAB64(salt) + "$" + encodeAB64(sum), nil
}

func verifyLDAPPBKDF2SHA1(c call, raw string, pw []byte, _ string) (bool, error) {
	return verifyLDAPPBKDF2(c, "PBKDF2-SHA1", sha1.New, raw, pw)
}

func verifyLDAPPBKDF2SHA256(c call, raw string, pw []byte, _ string) (bool, error) {
	return verifyLDAPPBKDF2(c, "PBKDF2-SHA256", sha256.New, raw, pw)
}

func verifyLDAPPBKDF2SHA512(c call, raw string, pw []byte, _ string) (bool, error) {
	return verifyLDAPPBKDF2(c, "PBKDF2-SHA512", sha512.New, raw, pw)
}

func generateLDAPPBKDF2SHA1(pw []byte, _ string, rounds int) (string, error) {
	return generateLDAPPBKDF2(sha1.New, pw, rounds)
}

func generateLDAPPBKDF2SHA256(pw []byte, _ string, rounds int) (string, error) {
	return generateLDAPPBKDF2(sha256.New, pw, rounds)
}

func generateLDAPPBKDF2SHA512(pw []byte, _ string, rounds int) (string, error) {
	return generateLDAPPBKDF2(sha512.New, pw, rounds)
}

// 389-DS's older {PBKDF2_SHA256} (ldap/servers/plugins/pwdstorage/
// pbkdf2_pwd.c): base64 of a 324-byte blob, a big-endian uint32 iteration
// count, a 64-byte salt and a 256-byte PBKDF2-HMAC-SHA256 output.
const (
	ds389SaltLen  = 64
	ds389HashLen  = 256
	ds389BlobLen  = 4 + ds389SaltLen + ds389HashLen
	ds389Defaults = 10000
)

func verify389PBKDF2SHA256(c call, raw string, pw []byte, _ string) (bool, error) {
	blob, err := decodeDovecotBase64(raw)
	if err != nil || len(blob) != ds389BlobLen {
		return false, fmt.Errorf("%w: PBKDF2_SHA256: want base64 of %d bytes", ErrMalformed, ds389BlobLen)
	}
	iter := binary.BigEndian.Uint32(blob)
	if iter == 0 {
		return false, fmt.Errorf("%w: PBKDF2_SHA256: zero iterations", ErrMalformed)
	}
	if err := c.beginPBKDF2(uint64(iter), ds389HashLen, sha256.Size); err != nil {
		return false, err
	}
	got, err := pbkdf2Key(sha256.New, pw, blob[4:4+ds389SaltLen], int(iter), ds389HashLen)
	if err != nil {
		return false, err
	}
	return hmac.Equal(got, blob[4+ds389SaltLen:]), nil
}

func generate389PBKDF2SHA256(pw []byte, _ string, rounds int) (string, error) {
	if rounds == 0 {
		rounds = ds389Defaults
	}
	if rounds > maxKDFIterations {
		return "", fmt.Errorf("schemes: PBKDF2_SHA256 rounds must be at most %d", maxKDFIterations)
	}
	blob := make([]byte, 4, ds389BlobLen)
	binary.BigEndian.PutUint32(blob, uint32(rounds))
	salt := randomBytes(ds389SaltLen)
	blob = append(blob, salt...)
	sum, err := pbkdf2Key(sha256.New, pw, salt, rounds, ds389HashLen)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(append(blob, sum...)), nil
}
