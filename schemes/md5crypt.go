package schemes

import (
	"crypto/md5"
	"strings"
)

// MD5-crypt ("$1$", Poul-Henning Kamp's md5crypt). Dovecot's MD5-CRYPT
// scheme uses its own copy of it, not libc (§3 "MD5-CRYPT and MD5"): the
// salt is at most 8 characters and stops at '$', and the result is compared
// with the stored string, so "$5$…", "$apr1$…" or DES values are simply
// mismatches.
//
// github.com/GehirnInc/crypt/md5_crypt computes the same function but its
// salt parser treats a salt beginning with "rounds=" as a rounds field
// (e.g. "$1$rounds=5$…", which libxcrypt and Dovecot read as the salt
// "rounds=5"), so it is used only as a test oracle (gehirninc_test.go).

const md5CryptSaltMax = 8

// md5CryptSalt extracts the salt from a "$1$salt$…" string.
func md5CryptSalt(s string) string {
	s = strings.TrimPrefix(s, "$1$")
	if i := strings.IndexByte(s, '$'); i >= 0 {
		s = s[:i]
	}
	if len(s) > md5CryptSaltMax {
		s = s[:md5CryptSaltMax]
	}
	return s
}

// md5CryptAppend appends "$1$salt$hash" to dst.
func md5CryptAppend(dst []byte, salt string, pw []byte) []byte {
	h := md5.New()
	h.Write(pw)
	h.Write([]byte(salt))
	h.Write(pw)
	var b [md5.Size]byte
	h.Sum(b[:0])

	h.Reset()
	h.Write(pw)
	h.Write([]byte("$1$"))
	h.Write([]byte(salt))
	for n := len(pw); n > 0; n -= md5.Size {
		h.Write(b[:min(n, md5.Size)])
	}
	// The historical quirk: for each bit of len(P), a NUL byte for a 1 and
	// the first password byte for a 0.
	var first [1]byte
	if len(pw) > 0 {
		first[0] = pw[0]
	}
	for n := len(pw); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write([]byte{0})
		} else {
			h.Write(first[:])
		}
	}
	var a [md5.Size]byte
	h.Sum(a[:0])

	for i := 0; i < 1000; i++ {
		h.Reset()
		if i&1 != 0 {
			h.Write(pw)
		} else {
			h.Write(a[:])
		}
		if i%3 != 0 {
			h.Write([]byte(salt))
		}
		if i%7 != 0 {
			h.Write(pw)
		}
		if i&1 != 0 {
			h.Write(a[:])
		} else {
			h.Write(pw)
		}
		h.Sum(a[:0])
	}

	dst = append(dst, "$1$"...)
	dst = append(dst, salt...)
	dst = append(dst, '$')
	dst = appendMD5CryptDigest(dst, &a)
	clear(a[:])
	clear(b[:])
	return dst
}

// appendMD5CryptDigest writes an MD5 digest in md5crypt's byte order
// (Sun MD5 uses the same).
func appendMD5CryptDigest(dst []byte, a *[16]byte) []byte {
	dst = b64From24(dst, a[0], a[6], a[12], 4)
	dst = b64From24(dst, a[1], a[7], a[13], 4)
	dst = b64From24(dst, a[2], a[8], a[14], 4)
	dst = b64From24(dst, a[3], a[9], a[15], 4)
	dst = b64From24(dst, a[4], a[10], a[5], 4)
	return b64From24(dst, 0, 0, a[11], 2)
}

// verifyMD5Crypt is Dovecot's MD5-CRYPT verifier.
func verifyMD5Crypt(raw string, pw []byte, _ string) (bool, error) {
	if !strings.HasPrefix(raw, "$1$") {
		// md5crypt always outputs "$1$…", which cannot equal raw.
		return false, nil
	}
	var buf [64]byte
	return ctEqual(raw, md5CryptAppend(buf[:0], md5CryptSalt(raw), pw)), nil
}

func generateMD5Crypt(pw []byte, _ string, _ int) (string, error) {
	return string(md5CryptAppend(nil, randomCryptSalt(md5CryptSaltMax), pw)), nil
}
