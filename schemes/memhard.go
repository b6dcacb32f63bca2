package schemes

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"
)

// Memory-hard schemes: argon2 (§3 "ARGON2I and ARGON2ID", §4 "Argon2 in
// Go") and scrypt ("$7$"). x/crypto allocates the whole memory cost on every
// verification, so each parameter is checked against the Limits first and
// the memory is then reserved from the Verifier's budget, which concurrent
// verifications share (budget.go, docs/schemes.md §7).

// argon2Params is a parsed PHC argon2 string.
type argon2Params struct {
	variant   string // "argon2i" or "argon2id"
	m, t, p   uint32
	salt, sum []byte
}

// argon2B64 is the PHC base64: standard alphabet, no padding, and (like
// libsodium's decoder) no stray bits in the last character.
var argon2B64 = base64.RawStdEncoding.Strict()

// parseArgon2 parses "$argon2{i,id}$v=19$m=M,t=T,p=P$salt$hash" with
// libsodium's acceptance rules (argon2-encoding.c / validate_inputs).
// ok=false means libsodium would return -1, which Dovecot reports as a
// mismatch (§3: every failure, even a malformed string, is a mismatch).
func parseArgon2(s string) (a argon2Params, ok bool) {
	var rest string
	switch {
	case strings.HasPrefix(s, "$argon2id$"):
		a.variant, rest = "argon2id", s[len("$argon2id$"):]
	case strings.HasPrefix(s, "$argon2i$"):
		a.variant, rest = "argon2i", s[len("$argon2i$"):]
	default:
		return a, false // includes $argon2d$, which libsodium does not verify
	}
	// Only version 19 (0x13) exists in libsodium and x/crypto.
	rest, found := strings.CutPrefix(rest, "v=19$")
	if !found {
		return a, false
	}
	fields := strings.Split(rest, "$")
	if len(fields) != 3 {
		return a, false
	}
	params := strings.Split(fields[0], ",")
	if len(params) != 3 {
		return a, false
	}
	var vals [3]uint64
	for i, key := range [3]string{"m=", "t=", "p="} {
		v, found := strings.CutPrefix(params[i], key)
		// Digits only, no leading zero (libsodium's decode_decimal).
		if !found || v == "" || v[0] < '0' || v[0] > '9' || (len(v) > 1 && v[0] == '0') {
			return a, false
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return a, false
		}
		vals[i] = n
	}
	// Go's decoder skips CR and LF; libsodium's stops at them (and then
	// fails), so only the alphabet itself is allowed.
	if !isStdB64Text(fields[1]) || !isStdB64Text(fields[2]) {
		return a, false
	}
	var err error
	if a.salt, err = argon2B64.DecodeString(fields[1]); err != nil {
		return a, false
	}
	if a.sum, err = argon2B64.DecodeString(fields[2]); err != nil {
		return a, false
	}
	// libsodium's limits: salt ≥ 8, output ≥ 16, t ≥ 1 (also for argon2i:
	// doveadm verifies t=1 argon2i strings), 1 ≤ p < 2^24, m ≥ 8·p.
	if len(a.salt) < 8 || len(a.sum) < 16 || vals[1] < 1 || vals[2] < 1 || vals[2] >= 1<<24 || vals[0] < 8*vals[2] {
		return a, false
	}
	a.m, a.t, a.p = uint32(vals[0]), uint32(vals[1]), uint32(vals[2])
	return a, true
}

// isStdB64Text reports whether s uses only the standard base64 alphabet.
func isStdB64Text(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// verifyArgon2 verifies a PHC argon2 string under ARGON2I, ARGON2ID or
// ARGON2: like libsodium, the variant is read from the string, so
// {ARGON2I}$argon2id$… verifies. m, t and p come from the string: a row can
// ask for 4 TiB (m is a uint32 of KiB) or 2^32 passes, so they are checked
// against the Limits before anything is allocated.
func verifyArgon2(c call, raw string, pw []byte, _ string) (bool, error) {
	a, ok := parseArgon2(raw)
	if !ok {
		return false, nil
	}
	lim := c.limits()
	if err := c.within(budgetArgon2,
		bound{"m", uint64(a.m), uint64(lim.Argon2MaxMemoryKiB)},
		bound{"t", uint64(a.t), uint64(lim.Argon2MaxPasses)},
		bound{"p", uint64(a.p), uint64(lim.Argon2MaxLanes)},
		bound{"work", mulSat(uint64(a.m), uint64(a.t)), uint64(lim.Argon2MaxWork)},
	); err != nil {
		return false, err
	}
	if a.p > 255 { // only reachable with Argon2MaxLanes raised above 255
		return false, fmt.Errorf("%w: argon2 with more than 255 lanes", ErrUnsupported)
	}
	release, err := c.reserve(budgetArgon2, argon2MemoryKiB(a))
	if err != nil {
		return false, err
	}
	defer release()
	if err := c.begin(budgetArgon2); err != nil {
		return false, err
	}
	var sum []byte
	if a.variant == "argon2id" {
		sum = argon2.IDKey(pw, a.salt, a.t, a.m, uint8(a.p), uint32(len(a.sum)))
	} else {
		sum = argon2.Key(pw, a.salt, a.t, a.m, uint8(a.p), uint32(len(a.sum)))
	}
	return subtle.ConstantTimeCompare(sum, a.sum) == 1, nil
}

// argon2MemoryKiB is what x/crypto/argon2 allocates for a: m rounded down
// to a multiple of 4·p one-KiB blocks (at least 8·p), and the output.
func argon2MemoryKiB(a argon2Params) uint64 {
	lanes := 4 * uint64(a.p)
	blocks := max(uint64(a.m)/lanes*lanes, 2*lanes)
	return blocks + kib(uint64(len(a.sum)))
}

func encodeArgon2(variant string, m, t, p uint32, salt, sum []byte) string {
	return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", variant, m, t, p,
		argon2B64.EncodeToString(salt), argon2B64.EncodeToString(sum))
}

// generateArgon2I follows Dovecot 2.3 (libsodium crypto_pwhash_str with
// opslimit = rounds, memlimit chosen from it): m=32 MiB, t=4, p=1 by
// default; rounds sets t (at least 3, libsodium's minimum), t ≥ 6 selects
// 128 MiB and t ≥ 8 512 MiB. 16-byte salt, 32-byte hash.
func generateArgon2I(pw []byte, _ string, rounds int) (string, error) {
	t, m := uint32(4), uint32(32768)
	if rounds != 0 {
		if rounds < 3 || rounds > 1<<20 {
			return "", fmt.Errorf("schemes: ARGON2I rounds must be 3..%d", 1<<20)
		}
		t = uint32(rounds)
		switch {
		case t >= 8:
			m = 524288
		case t >= 6:
			m = 131072
		}
	}
	salt := randomBytes(16)
	return encodeArgon2("argon2i", m, t, 1, salt, argon2.Key(pw, salt, t, m, 1, 32)), nil
}

// generateArgon2ID follows Dovecot 2.3: m=64 MiB, t=3, p=1 by default; t is
// at least 3; rounds 3 selects 256 MiB and rounds ≥ 4 1 GiB.
func generateArgon2ID(pw []byte, _ string, rounds int) (string, error) {
	t, m := uint32(3), uint32(65536)
	if rounds != 0 {
		if rounds > 1<<20 {
			return "", fmt.Errorf("schemes: ARGON2ID rounds must be at most %d", 1<<20)
		}
		t = uint32(max(rounds, 3))
		switch {
		case rounds >= 4:
			m = 1048576
		case rounds == 3:
			m = 262144
		}
	}
	salt := randomBytes(16)
	return encodeArgon2("argon2id", m, t, 1, salt, argon2.IDKey(pw, salt, t, m, 1, 32)), nil
}

// verifyScryptCrypt checks libxcrypt's "$7$" scrypt format:
// "$7$" N(1 char, log2) r(5 chars) p(5 chars) salt "$" hash(43 chars).
// Numbers are little-endian groups of 6 bits in the crypt alphabet; the
// salt is used as the text it is; the 32-byte hash is encoded least
// significant bits first. N, r and p come from the string: "$7$1/........U"
// asks for p = 2^29, i.e. a 64 GiB buffer, so they are checked against the
// Limits, and every allocation is counted, before scrypt runs.
func verifyScryptCrypt(c call, raw string, pw []byte) (bool, error) {
	if len(raw) < 14 {
		return false, nil
	}
	nlog := cryptIndex(raw[3])
	r, okR := desSaltValue(raw[4:9])
	p, okP := desSaltValue(raw[9:14])
	if nlog < 1 || nlog > 31 || !okR || !okP || r == 0 || p == 0 {
		return false, nil
	}
	saltEnd := strings.IndexByte(raw[14:], '$')
	if saltEnd < 0 {
		return false, nil
	}
	saltEnd += 14
	n := uint64(1) << uint(nlog)
	if uint64(r)*uint64(p) >= 1<<30 {
		return false, nil // libxcrypt refuses these (as scrypt's paper does)
	}
	lim := c.limits()
	if err := c.within(budgetScrypt,
		bound{"N", n, uint64(lim.ScryptMaxN)},
		bound{"r", uint64(r), uint64(lim.ScryptMaxR)},
		bound{"p", uint64(p), uint64(lim.ScryptMaxP)},
		bound{"work", mulSat(n, uint64(r), uint64(p)), uint64(lim.ScryptMaxWork)},
	); err != nil {
		return false, err
	}
	release, err := c.reserve(budgetScrypt, scryptMemoryKiB(n, r, p))
	if err != nil {
		return false, err
	}
	defer release()
	if err := c.begin(budgetScrypt); err != nil {
		return false, err
	}
	sum, err := scrypt.Key(pw, []byte(raw[14:saltEnd]), int(n), int(r), int(p), 32)
	if err != nil {
		return false, nil
	}
	out := make([]byte, 0, saltEnd+1+43)
	out = append(out, raw[:saltEnd+1]...)
	out = appendLE64(out, sum)
	return ctEqual(raw, out), nil
}

// scryptMemoryKiB is everything x/crypto/scrypt allocates: V (N blocks of
// 128·r bytes), B (p such blocks) and the working pair XY (two).
func scryptMemoryKiB(n uint64, r, p uint32) uint64 {
	return kib(mulSat(128, uint64(r), addSat(n, uint64(p), 2)))
}

// appendLE64 encodes bytes in yescrypt's order: each group of up to three
// bytes as a little-endian number, 6 bits per character, lowest first.
func appendLE64(dst, src []byte) []byte {
	for i := 0; i < len(src); i += 3 {
		var w uint32
		n := min(3, len(src)-i)
		for j := 0; j < n; j++ {
			w |= uint32(src[i+j]) << (8 * uint(j))
		}
		for k := 0; k < n+1; k++ {
			dst = append(dst, cryptAlphabet[w&0x3f])
			w >>= 6
		}
	}
	return dst
}
