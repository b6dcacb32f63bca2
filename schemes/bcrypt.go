package schemes

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// BLF-CRYPT (bcrypt), §3 "BLF-CRYPT" and §4 "x/crypto/bcrypt".
//
// Dovecot uses its own crypt_blowfish. golang.org/x/crypto/bcrypt computes
// the same function for "$2a$"/"$2b$"/"$2y$" but differs at the edges, so
// the stored value is checked here first:
//   - "$2" + letter + "$" and at least 30 characters, else an error;
//   - minor a, b, x or y only ("$2c$" is an error in crypt_blowfish but
//     accepted by Go);
//   - cost 04..31, and at most Limits.BcryptMaxCost (checked before any
//     work: x/crypto would run cost 31, about 36 hours);
//   - "$2x$" is the sign-extension-bug mode, which Go does not implement:
//     the buggy key words are computed here and handed to Go as a key
//     whose correct reading yields exactly those words;
//   - "$2a$" in crypt_blowfish has a countermeasure for the rare keys where
//     buggy and correct words collide (only possible with 0xFF bytes, never
//     in UTF-8); Go cannot express it, so that case is ErrUnsupported;
//   - only the first 72 bytes of the password count (Go's
//     GenerateFromPassword rejects longer passwords; Dovecot truncates).

const (
	bcryptMaxKey      = 72
	bcryptDefaultCost = 5 // doveadm pw -s BLF-CRYPT / CRYPT
	bcryptAlphabet    = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

var bcryptB64 = base64.NewEncoding(bcryptAlphabet).WithPadding(base64.NoPadding)

func verifyBcrypt(c call, raw string, pw []byte, _ string) (bool, error) {
	if raw == "" {
		return false, nil // crypt_blowfish's caller treats empty as mismatch
	}
	minor, cost, canonical, err := parseBcrypt(raw)
	if err != nil {
		return false, err
	}
	if !canonical {
		return false, nil
	}
	if err := c.within(budgetBcrypt, bound{"cost", uint64(cost), uint64(c.limits().BcryptMaxCost)}); err != nil {
		return false, err
	}
	key, err := bcryptKey(pw, minor)
	if err != nil {
		return false, err
	}
	if err := c.begin(budgetBcrypt); err != nil {
		clear(key)
		return false, err
	}
	// Go ignores the minor letter when computing; give it a form it accepts.
	err = bcrypt.CompareHashAndPassword([]byte("$2b$"+raw[4:]), key)
	clear(key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, fmt.Errorf("%w: bcrypt: %v", ErrMalformed, err)
}

// parseBcrypt checks a "$2?$cc$<22 salt><31 hash>" value as
// crypt_blowfish does. canonical is false when the value can never be
// reproduced (non-canonical last salt character, hash part not exactly 31
// characters): crypt_blowfish writes the salt back re-encoded and compares
// whole strings, so that is a mismatch rather than an error.
func parseBcrypt(raw string) (minor byte, cost int, canonical bool, err error) {
	if len(raw) < 30 || raw[0] != '$' || raw[1] != '2' || raw[2] < 'a' || raw[2] > 'z' || raw[3] != '$' {
		return 0, 0, false, fmt.Errorf("%w: password is not a blowfish password", ErrMalformed)
	}
	minor = raw[2]
	switch minor {
	case 'a', 'b', 'x', 'y':
	default:
		return 0, 0, false, fmt.Errorf("%w: unknown bcrypt version $2%c$", ErrMalformed, minor)
	}
	if raw[4] < '0' || raw[4] > '9' || raw[5] < '0' || raw[5] > '9' || raw[6] != '$' {
		return 0, 0, false, fmt.Errorf("%w: bad bcrypt cost", ErrMalformed)
	}
	cost = int(raw[4]-'0')*10 + int(raw[5]-'0')
	if cost < 4 || cost > 31 {
		return 0, 0, false, fmt.Errorf("%w: bcrypt cost %d not in 4..31", ErrMalformed, cost)
	}
	saltText := raw[7:29]
	salt, err := bcryptB64.DecodeString(saltText)
	if err != nil || len(salt) != 16 {
		return 0, 0, false, fmt.Errorf("%w: bad bcrypt salt", ErrMalformed)
	}
	return minor, cost, bcryptB64.EncodeToString(salt) == saltText && len(raw) == 60, nil
}

// bcryptKey returns the key bytes to give x/crypto/bcrypt (which appends a
// NUL itself) so that it computes what crypt_blowfish computes for minor.
func bcryptKey(pw []byte, minor byte) ([]byte, error) {
	if minor != 'a' && minor != 'x' {
		return append([]byte(nil), pw[:min(len(pw), bcryptMaxKey)]...), nil
	}
	// Expand the key as crypt_blowfish's BF_set_key does: 18 big-endian
	// words from the cyclic stream password, NUL, password, NUL, … both
	// correctly (unsigned bytes) and with the historical sign-extension bug.
	var correct, buggy [18]uint32
	var diff, sign uint32
	pos := 0
	for i := range correct {
		var w0, w1 uint32
		for j := 0; j < 4; j++ {
			var c byte
			if pos < len(pw) {
				c = pw[pos]
			}
			w0 = w0<<8 | uint32(c)
			w1 = w1<<8 | uint32(int32(int8(c)))
			if j != 0 {
				sign |= w1 & 0x80
			}
			if pos < len(pw) && c != 0 {
				pos++
			} else {
				pos = 0
			}
		}
		diff |= w0 ^ w1
		correct[i], buggy[i] = w0, w1
	}
	if minor == 'a' {
		if sign != 0 && diff == 0 {
			return nil, fmt.Errorf("%w: $2a$ hash of a key hit by crypt_blowfish's sign-extension countermeasure", ErrUnsupported)
		}
		return append([]byte(nil), pw[:min(len(pw), bcryptMaxKey)]...), nil
	}
	// $2x$: a 72-byte key whose correct words are the buggy words. Go reads
	// exactly 18 words from the first 72 bytes, so its appended NUL is never
	// used.
	key := make([]byte, 0, 4*len(buggy))
	for _, w := range buggy {
		key = append(key, byte(w>>24), byte(w>>16), byte(w>>8), byte(w))
	}
	return key, nil
}

// generateBcrypt writes "$2y$", cost 5 unless rounds says otherwise (the
// CRYPT and BLF-CRYPT generators of Dovecot 2.3.19). Go's $2a$ output is the
// correct (non-countermeasure) algorithm, i.e. exactly $2y$/$2b$.
func generateBcrypt(pw []byte, _ string, rounds int) (string, error) {
	cost := bcryptDefaultCost
	if rounds != 0 {
		if rounds < 4 || rounds > 31 {
			return "", fmt.Errorf("schemes: bcrypt cost must be 4..31")
		}
		cost = rounds
	}
	h, err := bcrypt.GenerateFromPassword(pw[:min(len(pw), bcryptMaxKey)], cost)
	if err != nil {
		return "", fmt.Errorf("schemes: bcrypt: %v", err)
	}
	s := string(h)
	if i := strings.IndexByte(s[1:], '$'); i > 0 {
		s = "$2y" + s[1+i:]
	}
	return s, nil
}
