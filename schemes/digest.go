package schemes

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	stdencoding "encoding"
	"encoding/binary"
	"fmt"
	"hash"
	"strconv"
	"strings"

	//lint:ignore SA1019 Dovecot's PLAIN-MD4 and NTLM schemes exist only for legacy stored values
	"golang.org/x/crypto/md4"
)

// Fixed-length digests (§3 "Fixed-length digests"): H(pass), compared in
// constant time. decodeStored has already checked the length.

func verifySHA1(raw string, pw []byte, _ string) (bool, error) {
	d := sha1.Sum(pw)
	return ctEqual(raw, d[:]), nil
}

func verifySHA256(raw string, pw []byte, _ string) (bool, error) {
	d := sha256.Sum256(pw)
	return ctEqual(raw, d[:]), nil
}

func verifySHA512(raw string, pw []byte, _ string) (bool, error) {
	d := sha512.Sum512(pw)
	return ctEqual(raw, d[:]), nil
}

func verifyPlainMD5(raw string, pw []byte, _ string) (bool, error) {
	d := md5.Sum(pw)
	return ctEqual(raw, d[:]), nil
}

func verifyPlainMD4(raw string, pw []byte, _ string) (bool, error) {
	return ctEqual(raw, md4Sum(pw)), nil
}

func md4Sum(b []byte) []byte {
	h := md4.New()
	h.Write(b)
	return h.Sum(nil)
}

func generateSHA1(pw []byte, _ string, _ int) (string, error) {
	d := sha1.Sum(pw)
	return string(d[:]), nil
}

func generateSHA256(pw []byte, _ string, _ int) (string, error) {
	d := sha256.Sum256(pw)
	return string(d[:]), nil
}

func generateSHA512(pw []byte, _ string, _ int) (string, error) {
	d := sha512.Sum512(pw)
	return string(d[:]), nil
}

func generatePlainMD5(pw []byte, _ string, _ int) (string, error) {
	d := md5.Sum(pw)
	return string(d[:]), nil
}

func generatePlainMD4(pw []byte, _ string, _ int) (string, error) {
	return string(md4Sum(pw)), nil
}

// Salted digests (§3 "Salted digests"): H(pass || salt) || salt, any salt
// length ≥ 1; a value no longer than the digest is an error.

func verifySalted(name string, h hash.Hash, raw string, pw []byte) (bool, error) {
	size := h.Size()
	if len(raw) <= size {
		return false, fmt.Errorf("%w: %s password is too short", ErrMalformed, name)
	}
	h.Write(pw)
	h.Write([]byte(raw[size:]))
	return ctEqual(raw[:size], h.Sum(nil)), nil
}

func generateSalted(h hash.Hash, pw []byte) (string, error) {
	// Dovecot writes a 4-byte salt.
	salt := randomBytes(4)
	h.Write(pw)
	h.Write(salt)
	return string(append(h.Sum(nil), salt...)), nil
}

func verifySSHA(raw string, pw []byte, _ string) (bool, error) {
	return verifySalted("SSHA", sha1.New(), raw, pw)
}

func verifySSHA256(raw string, pw []byte, _ string) (bool, error) {
	return verifySalted("SSHA256", sha256.New(), raw, pw)
}

func verifySSHA512(raw string, pw []byte, _ string) (bool, error) {
	return verifySalted("SSHA512", sha512.New(), raw, pw)
}

func verifySMD5(raw string, pw []byte, _ string) (bool, error) {
	return verifySalted("SMD5", md5.New(), raw, pw)
}

func generateSSHA(pw []byte, _ string, _ int) (string, error) {
	return generateSalted(sha1.New(), pw)
}

func generateSSHA256(pw []byte, _ string, _ int) (string, error) {
	return generateSalted(sha256.New(), pw)
}

func generateSSHA512(pw []byte, _ string, _ int) (string, error) {
	return generateSalted(sha512.New(), pw)
}

func generateSMD5(pw []byte, _ string, _ int) (string, error) {
	return generateSalted(md5.New(), pw)
}

// Plaintext (§3 "Plaintext").

func verifyPlain(raw string, pw []byte, _ string) (bool, error) {
	return ctEqual(raw, pw), nil
}

func generatePlain(pw []byte, _ string, _ int) (string, error) {
	return string(pw), nil
}

// verifyPlainTrunc implements PLAIN-TRUNC: the stored value is "N-text".
// If text is N bytes long and the password at least N bytes, only the first
// N bytes are compared; otherwise the whole password must equal text.
func verifyPlainTrunc(raw string, pw []byte, _ string) (bool, error) {
	num, text, ok := strings.Cut(raw, "-")
	if !ok {
		return false, fmt.Errorf("%w: PLAIN-TRUNC missing length: prefix", ErrMalformed)
	}
	n := 0
	for i := 0; i < len(num); i++ {
		c := num[i]
		if c < '0' || c > '9' {
			return false, fmt.Errorf("%w: PLAIN-TRUNC length is not a number", ErrMalformed)
		}
		switch {
		case n > 1<<20: // far beyond any password; stop before overflowing
			n = -1 // but keep checking that the rest are digits
		case n >= 0:
			n = n*10 + int(c-'0')
		}
	}
	if n == 0 && len(text) == 0 {
		// "0-" would accept every password. Dovecot does; authd refuses to
		// read it as "no password needed" (deliberate, safe deviation).
		return false, fmt.Errorf("%w: PLAIN-TRUNC with zero length", ErrMalformed)
	}
	if n == len(text) && len(pw) >= n {
		return ctEqual(text, pw[:n]), nil
	}
	return ctEqual(text, pw), nil
}

// generatePlainTrunc writes "N-password". doveadm pw writes the password
// without "N-", which Dovecot's own verifier then rejects (§3); authd writes
// a value that verifies.
func generatePlainTrunc(pw []byte, _ string, _ int) (string, error) {
	return strconv.Itoa(len(pw)) + "-" + string(pw), nil
}

// CRAM-MD5 / HMAC-MD5 (§3): the MD5 chaining states after compressing the
// outer pad block and then the inner pad block, A..D little-endian.

func cramMD5Credentials(pw []byte) ([]byte, error) {
	var key [64]byte
	if len(pw) > 64 {
		d := md5.Sum(pw)
		copy(key[:], d[:])
	} else {
		copy(key[:], pw)
	}
	out := make([]byte, 32)
	for i, pad := range [2]byte{0x5c, 0x36} {
		var block [64]byte
		for j := range block {
			block[j] = key[j] ^ pad
		}
		h := md5.New()
		h.Write(block[:])
		st, err := h.(stdencoding.BinaryMarshaler).MarshalBinary()
		if err != nil || len(st) < 20 || string(st[:4]) != "md5\x01" {
			return nil, fmt.Errorf("schemes: unexpected crypto/md5 state layout")
		}
		// Go's state: "md5\x01" then A..D big-endian.
		for w := 0; w < 4; w++ {
			binary.LittleEndian.PutUint32(out[16*i+4*w:], binary.BigEndian.Uint32(st[4+4*w:]))
		}
	}
	return out, nil
}

func verifyCRAMMD5(raw string, pw []byte, _ string) (bool, error) {
	c, err := cramMD5Credentials(pw)
	if err != nil {
		return false, err
	}
	return ctEqual(raw, c), nil
}

func generateCRAMMD5(pw []byte, _ string, _ int) (string, error) {
	c, err := cramMD5Credentials(pw)
	return string(c), err
}

// CRAMMD5Digest computes HMAC-MD5(password, challenge) from stored CRAM-MD5
// credentials (the 32 raw bytes Credentials returns for "CRAM-MD5"), without
// knowing the password: it resumes MD5 from the stored pad states. The SASL
// CRAM-MD5 mechanism compares the client's digest with this (RFC 2195).
func CRAMMD5Digest(cred, challenge []byte) ([]byte, error) {
	if len(cred) != 32 {
		return nil, fmt.Errorf("%w: CRAM-MD5 credentials must be 32 bytes", ErrMalformed)
	}
	inner, err := resumeMD5(cred[16:32])
	if err != nil {
		return nil, err
	}
	inner.Write(challenge)
	outer, err := resumeMD5(cred[0:16])
	if err != nil {
		return nil, err
	}
	outer.Write(inner.Sum(nil))
	return outer.Sum(nil), nil
}

// resumeMD5 builds an MD5 hash whose state is the given little-endian A..D
// after one 64-byte block.
func resumeMD5(state []byte) (hash.Hash, error) {
	st := make([]byte, 0, 92)
	st = append(st, "md5\x01"...)
	for w := 0; w < 4; w++ {
		st = binary.BigEndian.AppendUint32(st, binary.LittleEndian.Uint32(state[4*w:]))
	}
	st = append(st, make([]byte, 64)...)
	st = binary.BigEndian.AppendUint64(st, 64)
	h := md5.New()
	if err := h.(stdencoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		return nil, fmt.Errorf("schemes: cannot resume MD5 state: %v", err)
	}
	return h, nil
}

// DIGEST-MD5 (§3): MD5("user:realm:pass"), the original login name split at
// its last '@'.

func digestMD5Credentials(user string, pw []byte) []byte {
	u, realm := user, ""
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		u, realm = user[:i], user[i+1:]
	}
	h := md5.New()
	h.Write([]byte(u))
	h.Write([]byte{':'})
	h.Write([]byte(realm))
	h.Write([]byte{':'})
	h.Write(pw)
	return h.Sum(nil)
}

func verifyDigestMD5(raw string, pw []byte, user string) (bool, error) {
	if user == "" {
		return false, fmt.Errorf("%w: DIGEST-MD5 needs the user name", ErrMalformed)
	}
	return ctEqual(raw, digestMD5Credentials(user, pw)), nil
}

func generateDigestMD5(pw []byte, user string, _ int) (string, error) {
	if user == "" {
		return "", fmt.Errorf("schemes: DIGEST-MD5 needs a user name (-u)")
	}
	return string(digestMD5Credentials(user, pw)), nil
}

// plainMD5Spec is PLAIN-MD5's decoding rule, used by the MD5 scheme without
// going through the registry (which would be an initialisation cycle).
var plainMD5Spec = &scheme{name: "PLAIN-MD5", enc: encHex, rawLen: 16}

// verifyMD5 is the MD5 scheme (SQL's default, §3 "MD5-CRYPT and MD5"): a
// "$1$" value is MD5-CRYPT, anything else must decode as a PLAIN-MD5 digest
// (hex or base64, guessed); anything else is an error.
func verifyMD5(raw string, pw []byte, user string) (bool, error) {
	if strings.HasPrefix(raw, "$1$") {
		return verifyMD5Crypt(raw, pw, user)
	}
	d, err := decodeStored(raw, plainMD5Spec, encHex, false)
	if err != nil {
		return false, fmt.Errorf("%w: not a valid MD5-CRYPT or PLAIN-MD5 password", ErrMalformed)
	}
	return verifyPlainMD5(d, pw, user)
}
