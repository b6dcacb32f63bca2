package vars

import (
	"bytes"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"

	//lint:ignore SA1019 Dovecot's %{md4:…} variable hash; compatibility, not security
	"golang.org/x/crypto/md4"
)

// hashFormat is the format= option of %{<hash>;...:field} (docs/protocol.md §5.6).
type hashFormat uint8

const (
	fmtHex hashFormat = iota
	fmtHexUC
	fmtBase64
)

// pkcs5KeyLen is the PBKDF2 output length Dovecot 2.3 uses for %{pkcs5:...}:
// it passes HMAC_MAX_CONTEXT_SIZE, i.e. sizeof(struct sha512_ctx) on a
// 64-bit build (8 + 8 + 256 + 64 bytes).
const pkcs5KeyLen = 336

type hashSpec struct {
	name      string
	newHash   func() hash.Hash
	size      int
	pkcs5     bool
	field     node // the hashed value (no modifiers)
	rounds    int
	truncBits int
	format    hashFormat
	salt      *Template // nil: no salt= (pkcs5: the field name is the salt)
	saltLit   string
}

var hashMethods = map[string]struct {
	new  func() hash.Hash
	size int
}{
	"md4":      {md4.New, 16},
	"md5":      {md5.New, 16},
	"sha1":     {sha1.New, 20},
	"sha256":   {sha256.New, 32},
	"sha384":   {sha512.New384, 48},
	"sha512":   {sha512.New, 64},
	"sha3-256": {func() hash.Hash { return sha3.New256() }, 32},
	"sha3-512": {func() hash.Hash { return sha3.New512() }, 64},
	"size":     {newSizeHash, 8},
}

// HashMethod returns the hash named as Dovecot 2.3 names its hash methods
// (md4, md5, sha1, sha256, sha384, sha512, sha3-256, sha3-512, and size,
// the byte count as a 64-bit big-endian number); names are lower case.
func HashMethod(name string) (func() hash.Hash, bool) {
	m, ok := hashMethods[name]
	return m.new, ok
}

// parseUint is Dovecot's str_to_uint: decimal digits only, no sign, fits
// in 32 bits.
func parseUint(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return v, err == nil
}

// parseHash handles %{algo[;k=v,...]:field}. The algorithm name is looked up
// case-sensitively (only the dispatch to "a hash" is case-insensitive in
// Dovecot, so %{MD5:user} expands to "" and fails).
func (p *parser) parseHash(n *node, name, data string, pos int) {
	algo, args, hasArgs := strings.Cut(name, ";")
	h := &hashSpec{name: algo, rounds: 1}
	if algo == "pkcs5" {
		h.pkcs5 = true
		h.newHash, h.size = sha256.New, 32
		h.rounds = 2048
		h.saltLit = data
	} else if m, ok := hashMethods[algo]; ok {
		h.newHash, h.size = m.new, m.size
	} else {
		p.addUnknown(algo) // e.g. "MD5": hash names are lower case
		bad(n, true, fmt.Sprintf("unknown hash method '%s'", algo))
		return
	}
	p.resolveLong(&h.field, data, pos)
	if h.field.kind == nBad {
		e := h.field.err
		bad(n, e.Unknown, e.Msg)
		return
	}
	if hasArgs {
		for _, a := range strings.Split(args, ",") {
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				continue
			}
			switch k {
			case "rounds":
				r, ok := parseUint(v)
				if !ok {
					p.fail(pos, "hash: '%s' is not a number for rounds", v)
					bad(n, false, fmt.Sprintf("Cannot parse hash arguments: '%s' is not number for rounds", v))
					return
				}
				if r < 1 {
					p.fail(pos, "hash: rounds must be at least 1")
					bad(n, false, "Cannot parse hash arguments: rounds must be at least 1")
					return
				}
				if r > maxRounds {
					p.fail(pos, "hash: rounds=%d exceeds the limit %d", r, maxRounds)
					bad(n, false, "hash rounds above limit")
					return
				}
				h.rounds = int(r)
			case "truncate":
				t, ok := parseUint(v)
				if !ok {
					p.fail(pos, "hash: '%s' is not a number for truncate", v)
					bad(n, false, fmt.Sprintf("Cannot parse hash arguments: '%s' is not number for truncbits", v))
					return
				}
				h.truncBits = int(min(t, uint64(h.size*8)))
			case "salt":
				h.salt = p.sub(v, pos)
			case "format":
				switch v {
				case "hex":
					h.format = fmtHex
				case "hexuc":
					h.format = fmtHexUC
				case "base64":
					h.format = fmtBase64
				default:
					p.fail(pos, "hash: unsupported format '%s' (2.3 knows hex, hexuc, base64)", v)
					bad(n, false, fmt.Sprintf("Cannot parse hash arguments: '%s' is not supported format", v))
					return
				}
			}
			if k == "salt" {
				break // Dovecot stops reading arguments after salt=
			}
		}
	}
	n.kind = nHash
	n.hash = h
}

// appendHash appends the hash of the field value. The field value and the
// salt are expanded into dst's tail first, then replaced by the result.
func appendHash(dst []byte, h *hashSpec, c *Context, esc func(string) string) ([]byte, *ExpandError) {
	start := len(dst)
	dst, err := appendRaw(dst, &h.field, c, esc)
	if err != nil {
		return dst[:start], err
	}
	valEnd := len(dst)
	if h.salt != nil {
		dst, err = h.salt.expand(dst, c, esc)
		// An unknown variable in the salt leaves its UNSUPPORTED_VARIABLE
		// text in the salt; only real errors fail the hash.
		if err != nil && !err.Unknown {
			return dst[:start], err
		}
	} else if h.pkcs5 {
		dst = append(dst, h.saltLit...)
	}
	// Copies: handing dst's tail to the hash interfaces would make every
	// expansion buffer escape to the heap.
	value := bytes.Clone(dst[start:valEnd])
	salt := bytes.Clone(dst[valEnd:])

	var digest []byte
	if h.pkcs5 {
		k, perr := pbkdf2.Key(sha256.New, string(value), salt, h.rounds, pkcs5KeyLen)
		if perr != nil {
			return dst[:start], &ExpandError{Msg: "Cannot hash: PKCS5_PBKDF2 failed"}
		}
		digest = k
	} else {
		hh := h.newHash()
		digest = value
		for r := 0; r < h.rounds; r++ {
			hh.Reset()
			if len(salt) > 0 {
				hh.Write(salt)
			}
			hh.Write(digest)
			digest = hh.Sum(digest[:0])
		}
	}
	digest = TruncateBits(digest, h.truncBits)
	dst = dst[:start]
	switch h.format {
	case fmtBase64:
		dst = base64.StdEncoding.AppendEncode(dst, digest)
	default:
		// format=hexuc is lower case too: 2.3 calls binary_to_hex for it.
		dst = hex.AppendEncode(dst, digest)
	}
	return dst, nil
}

// TruncateBits keeps the first bits of b, right-aligned in the fewest whole
// bytes, as Dovecot's buffer_truncate_rshift_bits does: 12 bits of
// a1 b2 c3… are 0a 1b. It works in place; b is returned whole when it has
// no more than bits bits, or bits is not positive.
func TruncateBits(b []byte, bits int) []byte {
	if bits <= 0 || len(b)*8 < bits {
		return b
	}
	n := (bits + 7) / 8
	rem := uint(bits % 8)
	b = b[:min(n, len(b))]
	if rem > 0 {
		for i := len(b) - 1; i > 0; i-- {
			b[i] = b[i]>>(8-rem) | (b[i-1]&(0xff>>rem))<<rem
		}
		b[0] >>= 8 - rem
	}
	return b
}

// sizeHash is Dovecot's "size" pseudo hash: the number of bytes hashed, as
// a 64-bit big-endian integer.
type sizeHash struct{ n uint64 }

func newSizeHash() hash.Hash { return &sizeHash{} }

func (s *sizeHash) Write(p []byte) (int, error) { s.n += uint64(len(p)); return len(p), nil }
func (s *sizeHash) Sum(b []byte) []byte         { return binary.BigEndian.AppendUint64(b, s.n) }
func (s *sizeHash) Reset()                      { s.n = 0 }
func (s *sizeHash) Size() int                   { return 8 }
func (s *sizeHash) BlockSize() int              { return 1 }
