package schemes

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// decodeStored turns the stored text into the scheme's raw bytes, following
// Dovecot's password_decode (§2.3):
//   - the encoding is the suffix's, else the scheme default;
//   - with no suffix, a fixed raw length and a non-NONE default, the
//     encoding is guessed: hex when the text is exactly twice the raw length,
//     else base64; a failed guessed hex falls back to base64;
//   - a decoded length other than the fixed raw length is an error.
func decodeStored(data string, s *scheme, enc encoding, explicit bool) (string, error) {
	guessed := false
	if !explicit && enc != encNone && s.rawLen != 0 {
		if len(data) == 2*s.rawLen {
			enc = encHex
		} else {
			enc = encBase64
		}
		guessed = true
	}
	var raw string
	switch enc {
	case encNone:
		raw = data
	case encHex:
		b, err := hex.DecodeString(data)
		if err == nil {
			raw = string(b)
			break
		}
		if !guessed {
			return "", fmt.Errorf("%w: %s: input isn't valid hex", ErrMalformed, s.name)
		}
		// Some lengths are valid for both hex and base64 (§2.3): retry.
		fallthrough
	case encBase64:
		b, err := decodeDovecotBase64(data)
		if err != nil {
			return "", fmt.Errorf("%w: %s: input isn't valid base64", ErrMalformed, s.name)
		}
		raw = string(b)
	}
	if s.rawLen != 0 && len(raw) != s.rawLen {
		return "", fmt.Errorf("%w: %s: decoded length %d instead of %d", ErrMalformed, s.name, len(raw), s.rawLen)
	}
	return raw, nil
}

// encodeStored is the inverse of decodeStored for generated values.
func encodeStored(raw string, enc encoding) string {
	switch enc {
	case encHex:
		return hex.EncodeToString([]byte(raw))
	case encBase64:
		return base64.StdEncoding.EncodeToString([]byte(raw))
	}
	return raw
}

// decodeDovecotBase64 decodes standard base64 as Dovecot does (§2.3): '='
// padding is required, and whitespace (space, tab, CR, LF) anywhere is
// ignored. Go's StdEncoding skips only CR and LF, so the rest is removed
// first.
func decodeDovecotBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, " \t") {
		s = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, s)
	}
	return base64.StdEncoding.DecodeString(s)
}

// cryptAlphabet is the crypt(3) base-64 alphabet ("./0-9A-Za-z") used by
// every crypt-style format (DES, MD5-crypt, SHA-crypt, bcrypt uses its own
// order, see bcrypt.go).
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// cryptIndex maps a byte to its value in cryptAlphabet, or -1.
func cryptIndex(c byte) int {
	switch {
	case c == '.':
		return 0
	case c == '/':
		return 1
	case '0' <= c && c <= '9':
		return int(c-'0') + 2
	case 'A' <= c && c <= 'Z':
		return int(c-'A') + 12
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 38
	}
	return -1
}

// b64From24 appends n characters encoding w, least significant 6 bits
// first (the "b64_from_24bit" step shared by MD5-crypt and SHA-crypt).
func b64From24(dst []byte, b2, b1, b0 byte, n int) []byte {
	w := uint32(b2)<<16 | uint32(b1)<<8 | uint32(b0)
	for ; n > 0; n-- {
		dst = append(dst, cryptAlphabet[w&0x3f])
		w >>= 6
	}
	return dst
}
