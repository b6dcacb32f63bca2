package schemes

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// The crypt family: CRYPT, DES-CRYPT, SHA256-CRYPT and SHA512-CRYPT share
// one verifier in Dovecot (§3 "crypt family"): "$2?$" goes to its internal
// bcrypt, an empty value is a mismatch, and everything else is
// crypt(password, stored) from libxcrypt compared with stored. So any
// format libxcrypt knows verifies under any of the four names, and anything
// libxcrypt refuses (locked "*"/"!…" values, "$apr1$", bad settings) is a
// mismatch. This file reproduces libxcrypt's dispatch.

// libxcryptMaxPassphrase: libxcrypt refuses passphrases of 512 bytes or
// more (CRYPT_MAX_PASSPHRASE_SIZE) with a failure token, i.e. a mismatch.
const libxcryptMaxPassphrase = 512

// badSettingChar reports bytes libxcrypt refuses anywhere in a setting
// (Dovecot passes the whole stored hash as the setting): control
// characters, space, DEL, 8-bit bytes and ! * : ; \ (checked against
// libxcrypt 4.4.33).
func badSettingChar(c byte) bool {
	return c <= ' ' || c >= 0x7f || c == '!' || c == '*' || c == ':' || c == ';' || c == '\\'
}

func verifyCryptFamily(c call, raw string, pw []byte, user string) (bool, error) {
	if len(raw) > 4 && raw[0] == '$' && raw[1] == '2' && raw[3] == '$' {
		return verifyBcrypt(c, raw, pw, user)
	}
	if raw == "" {
		return false, nil
	}
	// authd extension: a bare PHC argon2 string (libxcrypt has no argon2;
	// Dovecot would say mismatch).
	if strings.HasPrefix(raw, "$argon2") {
		return verifyArgon2(c, raw, pw, user)
	}
	if len(pw) >= libxcryptMaxPassphrase {
		return false, nil
	}
	for i := 0; i < len(raw); i++ {
		if badSettingChar(raw[i]) {
			return false, nil
		}
	}
	switch {
	case strings.HasPrefix(raw, "$6$"), strings.HasPrefix(raw, "$5$"):
		return shaCryptVerify(c, raw, pw)
	case strings.HasPrefix(raw, "$1$"):
		var buf [64]byte
		return ctEqual(raw, md5CryptAppend(buf[:0], md5CryptSalt(raw), pw)), nil
	case strings.HasPrefix(raw, "$y$"):
		return verifyYescrypt(c, raw, pw)
	case strings.HasPrefix(raw, "$7$"):
		return verifyScryptCrypt(c, raw, pw)
	case strings.HasPrefix(raw, "$3$"):
		return ctEqual(raw, ntHashCrypt(pw)), nil
	case strings.HasPrefix(raw, "$sha1$"):
		return verifySHA1Crypt(c, raw, pw)
	case strings.HasPrefix(raw, "$gy$"):
		return verifyGostYescrypt(c, raw, pw)
	case strings.HasPrefix(raw, "$md5$"), strings.HasPrefix(raw, "$md5,"):
		return verifySunMD5(c, raw, pw)
	case strings.HasPrefix(raw, "$sm3$"), strings.HasPrefix(raw, "$sm3y$"):
		return false, fmt.Errorf("%w: SM3 crypt", ErrUnsupported)
	case raw[0] == '$':
		return false, nil // unknown prefix: libxcrypt's failure token
	case raw[0] == '_':
		return verifyBSDiCrypt(c, raw, pw)
	}
	// Traditional DES: two salt characters from the crypt alphabet; longer
	// values (more than 13 characters) are libxcrypt's bigcrypt.
	if len(raw) < 2 || cryptIndex(raw[0]) < 0 || cryptIndex(raw[1]) < 0 {
		return false, nil
	}
	var buf [13 + 11*bigcryptMaxSegments]byte
	if len(raw) <= 13 {
		return ctEqual(raw, desCryptAppend(buf[:0], raw, pw)), nil
	}
	return ctEqual(raw, bigcryptAppend(buf[:0], raw, pw)), nil
}

// ntHashCrypt is FreeBSD's "$3$" NT hash as libxcrypt writes it:
// "$3$$" + hex(MD4(each password byte followed by a zero byte)). libxcrypt,
// like Dovecot's old NTLM scheme, widens bytes, not UTF-16 code units.
func ntHashCrypt(pw []byte) []byte {
	wide := make([]byte, 2*len(pw))
	for i, c := range pw {
		wide[2*i] = c
	}
	out := append([]byte("$3$$"), hex.EncodeToString(md4Sum(wide))...)
	clear(wide)
	return out
}

// verifyBSDiCrypt checks a BSDi "_" value; its DES count is in the stored
// value (Limits.BSDiCryptMaxRounds).
func verifyBSDiCrypt(c call, raw string, pw []byte) (bool, error) {
	if len(raw) < 9 {
		return false, nil
	}
	count, salt, ok := parseBSDi(raw)
	if !ok {
		return false, nil // an invalid BSDi setting is refused by libxcrypt
	}
	if err := c.within(budgetBSDi, bound{"rounds", uint64(count), uint64(c.limits().BSDiCryptMaxRounds)}); err != nil {
		return false, err
	}
	if err := c.begin(budgetBSDi); err != nil {
		return false, err
	}
	return ctEqual(raw, bsdiCryptAppend(nil, raw[:9], count, salt, pw)), nil
}

// verifySHA1Crypt is NetBSD's "$sha1$<iterations>$<salt>$<28 chars>":
// HMAC-SHA1 keyed with the password over salt+"$sha1$"+iterations, then
// iterated over its own output. Each iteration is one HMAC-SHA1, and the
// count is in the stored value (Limits.SHA1CryptMaxIterations).
func verifySHA1Crypt(c call, raw string, pw []byte) (bool, error) {
	rest := raw[len("$sha1$"):]
	num, rest, ok := strings.Cut(rest, "$")
	if !ok || num == "" {
		return false, nil
	}
	iter, err := strconv.ParseUint(num, 10, 32)
	if err != nil || iter == 0 {
		return false, nil
	}
	if err := c.within(budgetSHA1Crypt, bound{"iterations", iter, uint64(c.limits().SHA1CryptMaxIterations)}); err != nil {
		return false, err
	}
	salt := rest
	if i := strings.IndexByte(salt, '$'); i >= 0 {
		salt = salt[:i]
	}
	if len(salt) > 64 {
		salt = salt[:64]
	}
	if err := c.begin(budgetSHA1Crypt); err != nil {
		return false, err
	}
	mac := hmac.New(sha1.New, pw)
	mac.Write([]byte(salt))
	mac.Write([]byte("$sha1$"))
	mac.Write([]byte(strconv.FormatUint(iter, 10)))
	d := mac.Sum(nil)
	for i := uint64(1); i < iter; i++ {
		mac.Reset()
		mac.Write(d)
		d = mac.Sum(d[:0])
	}
	out := make([]byte, 0, 100)
	out = append(out, "$sha1$"...)
	out = strconv.AppendUint(out, iter, 10)
	out = append(out, '$')
	out = append(out, salt...)
	out = append(out, '$')
	for i := 0; i < 18; i += 3 {
		out = b64From24(out, d[i], d[i+1], d[i+2], 4)
	}
	out = b64From24(out, d[18], d[19], d[0], 4)
	return ctEqual(raw, out), nil
}
