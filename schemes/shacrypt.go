package schemes

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SHA-256-crypt ("$5$") and SHA-512-crypt ("$6$"), Ulrich Drepper's
// "Unix crypt using SHA-256 and SHA-512" (2007), with libxcrypt's setting
// rules (§3 crypt family, §4 GehirnInc).
//
// Written here rather than taken from github.com/GehirnInc/crypt because
// that library (a) mis-parses "rounds=N$" with a salt shorter than 16
// characters (8 of the SHA-crypt vectors fail) and (b) allocates about 5000
// times per verification; see gehirninc_test.go. This implementation
// allocates nothing for passwords up to shaCryptStackPw bytes: every hash
// input is assembled in a stack buffer and hashed with the one-shot
// sha256.Sum256/sha512.Sum512, which keep their state on the stack. Longer
// passwords take a streaming path with two allocations.

const (
	shaCryptRoundsDefault = 5000
	shaCryptRoundsMin     = 1000
	shaCryptRoundsMax     = 999999999
	shaCryptSaltMax       = 16
	// shaCryptStackPw is the longest password handled without allocating:
	// the DP input is len(P)² bytes and must fit in shaCryptBuf.
	shaCryptStackPw = 64
	// shaCryptBuf holds the largest one-shot input: DS = S × (16+A[0]) ≤
	// 16 × 271 = 4336 bytes; DP ≤ 64² = 4096; A ≤ 2·64+16+7·64 = 592.
	shaCryptBuf = 4352
)

// shaCryptSetting is a parsed "$5$"/"$6$" setting.
type shaCryptSetting struct {
	is512  bool
	rounds int
	custom bool // "rounds=N$" was written and is echoed in the output
	salt   string
}

// parseSHACrypt parses the setting at the start of s (which begins with
// "$5$" or "$6$"). ok is false where libxcrypt refuses the setting (its
// crypt() then returns a failure token, which Dovecot reports as a
// mismatch): rounds not in 1000..999999999, written with a leading zero or
// without the closing '$'.
func parseSHACrypt(s string) (set shaCryptSetting, ok bool) {
	set.is512 = s[1] == '6'
	set.rounds = shaCryptRoundsDefault
	s = s[3:]
	if rest, found := strings.CutPrefix(s, "rounds="); found {
		end := strings.IndexByte(rest, '$')
		if end <= 0 || rest[0] < '1' || rest[0] > '9' || end > 9 {
			return set, false
		}
		n := 0
		for i := 0; i < end; i++ {
			c := rest[i]
			if c < '0' || c > '9' {
				return set, false
			}
			n = n*10 + int(c-'0')
		}
		if n < shaCryptRoundsMin || n > shaCryptRoundsMax {
			return set, false
		}
		set.rounds, set.custom = n, true
		s = rest[end+1:]
	}
	if end := strings.IndexByte(s, '$'); end >= 0 {
		s = s[:end]
	}
	if len(s) > shaCryptSaltMax {
		s = s[:shaCryptSaltMax]
	}
	set.salt = s
	return set, true
}

// shaCryptVerify recomputes the crypt string for stored's setting and
// compares it with stored. stored begins with "$5$" or "$6$". The rounds
// come from the stored value, so they are checked against
// Limits.SHACryptMaxRounds first (libxcrypt would run up to 999,999,999).
func shaCryptVerify(c call, stored string, pw []byte) (bool, error) {
	set, ok := parseSHACrypt(stored)
	if !ok {
		return false, nil
	}
	if err := c.within(budgetSHACrypt, bound{"rounds", uint64(set.rounds), uint64(c.limits().SHACryptMaxRounds)}); err != nil {
		return false, err
	}
	if err := c.begin(budgetSHACrypt); err != nil {
		return false, err
	}
	var out [128]byte
	res := shaCryptAppend(out[:0], set, pw)
	return ctEqual(stored, res), nil
}

// shaCryptAppend appends the full crypt string ("$6$[rounds=N$]salt$hash")
// to dst.
func shaCryptAppend(dst []byte, set shaCryptSetting, pw []byte) []byte {
	var sum [64]byte
	shaCryptDigest(&sum, set, pw)
	dst = shaCryptFormat(dst, set, &sum)
	clear(sum[:])
	return dst
}

// shaCryptFormat appends the crypt string of the raw digest sum to dst.
func shaCryptFormat(dst []byte, set shaCryptSetting, sum *[64]byte) []byte {
	if set.is512 {
		dst = append(dst, "$6$"...)
	} else {
		dst = append(dst, "$5$"...)
	}
	if set.custom {
		dst = append(dst, "rounds="...)
		dst = strconv.AppendInt(dst, int64(set.rounds), 10)
		dst = append(dst, '$')
	}
	dst = append(dst, set.salt...)
	dst = append(dst, '$')
	if set.is512 {
		for i := 0; i < 21; i++ {
			a, b, c := i, i+21, i+42
			switch i % 3 {
			case 1:
				a, b, c = i+21, i+42, i
			case 2:
				a, b, c = i+42, i, i+21
			}
			dst = b64From24(dst, sum[a], sum[b], sum[c], 4)
		}
		return b64From24(dst, 0, 0, sum[63], 2)
	}
	for i := 0; i < 10; i++ {
		a, b, c := i, i+10, i+20
		switch i % 3 {
		case 1:
			a, b, c = i+20, i, i+10
		case 2:
			a, b, c = i+10, i+20, i
		}
		dst = b64From24(dst, sum[a], sum[b], sum[c], 4)
	}
	return b64From24(dst, 0, sum[31], sum[30], 3)
}

// shaSum hashes data into dst with SHA-512 or SHA-256 (first 32 bytes).
// The concrete one-shot functions keep everything on the stack.
func shaSum(is512 bool, dst *[64]byte, data []byte) {
	if is512 {
		*dst = sha512.Sum512(data)
		return
	}
	s := sha256.Sum256(data)
	copy(dst[:], s[:])
}

// shaCryptRounds is where the rounds (step 21) start: digest A in c, and
// the P- and S-sequences, for a password of at most shaCryptStackPw bytes.
type shaCryptRounds struct {
	c      [64]byte
	pbuf   [shaCryptStackPw]byte // the P-sequence, np bytes
	ds     [64]byte              // DS, whose first ns bytes are the S-sequence
	np, ns int
}

func (r *shaCryptRounds) pseq() []byte { return r.pbuf[:r.np] }
func (r *shaCryptRounds) sseq() []byte { return r.ds[:r.ns] }

func (r *shaCryptRounds) clear() { *r = shaCryptRounds{} }

// shaCryptDigest computes the raw digest (32 or 64 bytes in out) following
// the numbered steps of Drepper's specification.
func shaCryptDigest(out *[64]byte, set shaCryptSetting, pw []byte) {
	if len(pw) > shaCryptStackPw {
		shaCryptDigestStream(out, set, pw)
		return
	}
	hs := 32
	if set.is512 {
		hs = 64
	}
	var r shaCryptRounds
	shaCryptPrepare(&r, set, pw)
	// The longest round input: C, S, P, P (or P, S, P, C).
	var buf [64 + shaCryptSaltMax + 2*shaCryptStackPw]byte
	c := &r.c
	for i := 0; i < set.rounds; i++ {
		if i%yieldRounds == yieldRounds-1 {
			yieldCore()
		}
		n := shaCryptRoundInput(buf[:], i, c[:hs], r.pseq(), r.sseq())
		shaSum(set.is512, c, buf[:n])
	}
	*out = *c
	clear(buf[:])
	r.clear()
}

// shaCryptRoundInput writes round i's hash input into buf (step 21) and
// returns its length: C or the P-sequence, then the S-sequence unless i is
// a multiple of 3, then the P-sequence unless i is a multiple of 7, then
// the P-sequence or C.
func shaCryptRoundInput(buf []byte, i int, c, pseq, sseq []byte) int {
	n := 0
	if i&1 != 0 {
		n += copy(buf[n:], pseq)
	} else {
		n += copy(buf[n:], c)
	}
	if i%3 != 0 {
		n += copy(buf[n:], sseq)
	}
	if i%7 != 0 {
		n += copy(buf[n:], pseq)
	}
	if i&1 != 0 {
		n += copy(buf[n:], c)
	} else {
		n += copy(buf[n:], pseq)
	}
	return n
}

// shaCryptPrepare runs steps 1-20 for a password of at most
// shaCryptStackPw bytes: digest A into r.c, and the P- and S-sequences.
func shaCryptPrepare(r *shaCryptRounds, set shaCryptSetting, pw []byte) {
	hs := 32
	if set.is512 {
		hs = 64
	}
	var saltBuf [shaCryptSaltMax]byte
	salt := saltBuf[:copy(saltBuf[:], set.salt)]
	var buf [shaCryptBuf]byte
	var b, dp [64]byte

	// Digest B = H(P S P) (steps 4-8).
	n := copy(buf[:], pw)
	n += copy(buf[n:], salt)
	n += copy(buf[n:], pw)
	shaSum(set.is512, &b, buf[:n])

	// Digest A = H(P S B-repeated-to-len(P) then, per bit of len(P) from
	// the lowest, B for a 1 and P for a 0) (steps 1-3, 9-12).
	n = copy(buf[:], pw)
	n += copy(buf[n:], salt)
	cnt := len(pw)
	for ; cnt > hs; cnt -= hs {
		n += copy(buf[n:], b[:hs])
	}
	n += copy(buf[n:], b[:cnt])
	for cnt = len(pw); cnt > 0; cnt >>= 1 {
		if cnt&1 != 0 {
			n += copy(buf[n:], b[:hs])
		} else {
			n += copy(buf[n:], pw)
		}
	}
	shaSum(set.is512, &r.c, buf[:n])

	// DP = H(P repeated len(P) times); P-sequence = DP repeated to len(P)
	// (steps 13-16).
	n = 0
	for i := 0; i < len(pw); i++ {
		n += copy(buf[n:], pw)
	}
	shaSum(set.is512, &dp, buf[:n])
	r.np = len(pw)
	for i := range r.np {
		r.pbuf[i] = dp[i%hs]
	}

	// DS = H(S repeated 16+A[0] times); S-sequence = first len(S) bytes
	// (steps 17-20; len(S) ≤ 16 < hs).
	n = 0
	for i := 0; i < 16+int(r.c[0]); i++ {
		n += copy(buf[n:], salt)
	}
	shaSum(set.is512, &r.ds, buf[:n])
	r.ns = len(salt)
	clear(buf[:])
	clear(b[:])
	clear(dp[:])
}

// shaCryptStream is the heap scratch of the long-password path.
type shaCryptStream struct {
	salt      [shaCryptSaltMax]byte
	b, c, dp  [64]byte
	ds        [64]byte
	sumScrach [64]byte
}

// shaCryptDigestStream is shaCryptDigest for passwords too long for the
// stack buffers: the same steps, streamed through one hash object.
// Allocations: the scratch struct and the hash (2).
func shaCryptDigestStream(out *[64]byte, set shaCryptSetting, pw []byte) {
	var h hash.Hash
	hs := 32
	if set.is512 {
		h, hs = sha512.New(), 64
	} else {
		h = sha256.New()
	}
	st := new(shaCryptStream)
	salt := st.salt[:copy(st.salt[:], set.salt)]
	sum := func(dst *[64]byte) {
		h.Sum(st.sumScrach[:0])
		copy(dst[:], st.sumScrach[:hs])
		h.Reset()
	}
	writeRepeated := func(src []byte, n int) { // n bytes of src repeated
		for ; n > hs; n -= hs {
			h.Write(src[:hs])
		}
		h.Write(src[:n])
	}

	h.Write(pw)
	h.Write(salt)
	h.Write(pw)
	sum(&st.b)

	h.Write(pw)
	h.Write(salt)
	writeRepeated(st.b[:], len(pw))
	for cnt := len(pw); cnt > 0; cnt >>= 1 {
		if cnt&1 != 0 {
			h.Write(st.b[:hs])
		} else {
			h.Write(pw)
		}
	}
	sum(&st.c)

	for i := 0; i < len(pw); i++ {
		h.Write(pw)
	}
	sum(&st.dp)

	for i := 0; i < 16+int(st.c[0]); i++ {
		h.Write(salt)
	}
	sum(&st.ds)
	sseq := st.ds[:len(salt)]

	for i := 0; i < set.rounds; i++ {
		if i&1 != 0 {
			writeRepeated(st.dp[:], len(pw))
		} else {
			h.Write(st.c[:hs])
		}
		if i%3 != 0 {
			h.Write(sseq)
		}
		if i%7 != 0 {
			writeRepeated(st.dp[:], len(pw))
		}
		if i&1 != 0 {
			h.Write(st.c[:hs])
		} else {
			writeRepeated(st.dp[:], len(pw))
		}
		sum(&st.c)
	}
	*out = st.c
	*st = shaCryptStream{}
}

// generateSHACrypt makes a new "$5$"/"$6$" string with a 16-character salt;
// "rounds=" is written only when rounds is not the default, as doveadm does.
func generateSHACrypt(is512 bool, pw []byte, rounds int) (string, error) {
	if len(pw) >= libxcryptMaxPassphrase {
		return "", fmt.Errorf("schemes: crypt(3) refuses passwords of %d bytes or more", libxcryptMaxPassphrase)
	}
	set := shaCryptSetting{is512: is512, rounds: shaCryptRoundsDefault, salt: randomCryptSalt(shaCryptSaltMax)}
	if rounds != 0 && rounds != shaCryptRoundsDefault {
		if rounds < shaCryptRoundsMin || rounds > shaCryptRoundsMax {
			return "", fmt.Errorf("schemes: SHA-crypt rounds must be %d..%d", shaCryptRoundsMin, shaCryptRoundsMax)
		}
		set.rounds, set.custom = rounds, true
	}
	return string(shaCryptAppend(nil, set, pw)), nil
}

func generateSHA512Crypt(pw []byte, _ string, rounds int) (string, error) {
	return generateSHACrypt(true, pw, rounds)
}

func generateSHA256Crypt(pw []byte, _ string, rounds int) (string, error) {
	return generateSHACrypt(false, pw, rounds)
}
