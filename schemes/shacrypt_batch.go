package schemes

import (
	"cmp"
	"context"
	"encoding/binary"
	"math/big"
	"slices"
	"strings"
	"sync"

	"github.com/authd-project/authd/internal/yield"
)

// Batched SHA-512-crypt. A SHA-512-crypt verification is 5000 (the
// default) rounds of SHA-512, each over one block for passwords of up to
// 15 bytes, and each round needs the previous one's digest: one password
// cannot use more than one 64-bit lane. Eight verifications can: on a CPU
// with AVX-512, block8 runs the block function of eight independent
// messages in the eight lanes of its registers, in about the time a
// single-lane block takes a few times over. VerifyBatch runs up to
// BatchMax verifications in lock step, round by round; the result of
// each is the same as Verify's, bit for bit (shacrypt_batch_test.go
// checks it against the one-at-a-time path).
//
// Only verifications that fit take part (Batchable): SHA-512-crypt with
// a password of at most batchMaxPw bytes, which keeps every round's
// input within one block. Everything else goes the usual way.

// BatchMax is the most verifications VerifyBatch runs together.
const BatchMax = 8

// batchMin is the fewest worth a lock-step run: block8 costs the same
// with one lane filled or eight, about two single-lane blocks, so one job
// alone is cheaper the usual way.
const batchMin = 2

// yieldRounds is how often (in rounds: ≈0.15 ms alone, ≈0.4 ms in lock
// step) a SHA-crypt verification lets other goroutines have its core.
const yieldRounds = 256

// batchMaxPw is the longest password whose round input (64 + 16 + 2 ×
// len(P) bytes at most) fits in one block with SHA-512's 17 bytes of
// padding and length.
const batchMaxPw = 15

// A BatchJob is one SHA-512-crypt verification prepared for VerifyBatch.
type BatchJob struct {
	stored string
	set    shaCryptSetting
	pw     [batchMaxPw]byte
	npw    int
	ok     bool
}

// Match reports the verification's outcome once VerifyBatch has run it:
// whether the password matched the stored value.
func (j *BatchJob) Match() bool { return j.ok }

// Batchable returns a job for VerifyBatch when verifying password against
// data stored under schemeName is a SHA-512-crypt verification it can
// run — the same checks Verify makes have passed, and only the hashing is
// left — and false otherwise (including every case where Verify would
// answer without hashing, or with an error): then call Verify.
func (v *Verifier) Batchable(ctx context.Context, schemeName, data string, password []byte) (*BatchJob, bool) {
	if !haveBlock8 || len(password) > batchMaxPw || !strings.Contains(data, "$6$") {
		return nil, false
	}
	s, enc, suffix, err := lookup(schemeName)
	if err != nil || !batchScheme(s.name) {
		return nil, false
	}
	raw, err := decodeStored(data, s, enc, suffix != "")
	if err != nil || !strings.HasPrefix(raw, "$6$") || slices.Contains(password, 0) {
		return nil, false
	}
	for i := 0; i < len(raw); i++ {
		if badSettingChar(raw[i]) {
			return nil, false
		}
	}
	set, ok := parseSHACrypt(raw)
	if !ok {
		return nil, false
	}
	c := call{ctx: ctx, v: v}
	if c.within(budgetSHACrypt, bound{"rounds", uint64(set.rounds), uint64(c.limits().SHACryptMaxRounds)}) != nil ||
		c.begin(budgetSHACrypt) != nil {
		return nil, false
	}
	j := &BatchJob{stored: raw, set: set, npw: len(password)}
	copy(j.pw[:], password)
	return j, true
}

// batchScheme reports whether a scheme verifies "$6$" values with
// shaCryptVerify (the crypt family, cryptfamily.go).
func batchScheme(name string) bool {
	switch name {
	case "SHA512-CRYPT", "SHA256-CRYPT", "CRYPT", "DES-CRYPT":
		return true
	}
	return false
}

// VerifyBatch runs jobs and sets each one's Match. Jobs with the same
// rounds share lock-step runs of up to BatchMax; fewer than batchMin run
// one by one. It never fails: every job was checked by Batchable.
func VerifyBatch(jobs []*BatchJob) {
	js := slices.Clone(jobs)
	slices.SortFunc(js, func(a, b *BatchJob) int { return cmp.Compare(a.set.rounds, b.set.rounds) })
	for len(js) > 0 {
		n := 1
		for n < len(js) && n < BatchMax && js[n].set.rounds == js[0].set.rounds {
			n++
		}
		g := js[:n]
		js = js[n:]
		if len(g) < batchMin {
			for _, j := range g {
				j.verifyOne()
			}
			continue
		}
		lockStep(g)
	}
}

func (j *BatchJob) password() []byte { return j.pw[:j.npw] }

// yieldCore lets other goroutines run when some are waiting for a core.
// A verification keeps its core for a millisecond or more (a batch for
// several); the goroutines waiting for one — a reply to read from the
// database, one to write to a client — would wait as long, and with both
// cores hashing the SQL lookups that feed the verifications ran dry: the
// pool of five connections spent most of its time waiting for a core to
// read the answers, and the batches stayed too small to pay. When none
// waits, the yield is skipped (package yield says why).
func yieldCore() { yield.Others() }

// verifyOne verifies j the usual way.
func (j *BatchJob) verifyOne() {
	var out [128]byte
	j.ok = ctEqual(j.stored, shaCryptAppend(out[:0], j.set, j.password()))
}

// lockStep verifies a group of 3 to 8 jobs with the same rounds together.
func lockStep(g []*BatchJob) {
	var rs [BatchMax]shaCryptRounds
	for l, j := range g {
		shaCryptPrepare(&rs[l], j.set, j.password())
	}
	k, iv := sha512Lanes()
	var w [16][8]uint64
	var state [8][8]uint64
	var blk [128]byte
	for i := 0; i < g[0].set.rounds; i++ {
		if i%yieldRounds == yieldRounds-1 {
			yieldCore()
		}
		for l := range g {
			r := &rs[l]
			n := shaCryptRoundInput(blk[:], i, r.c[:], r.pseq(), r.sseq())
			blk[n] = 0x80
			clear(blk[n+1 : 120])
			binary.BigEndian.PutUint64(blk[120:], uint64(n)*8)
			for t := range 16 {
				w[t][l] = binary.BigEndian.Uint64(blk[t*8:])
			}
		}
		state = *iv
		block8(&state, &w, k)
		for l := range g {
			for t := range 8 {
				binary.BigEndian.PutUint64(rs[l].c[t*8:], state[t][l])
			}
		}
	}
	var out [128]byte
	for l, j := range g {
		j.ok = ctEqual(j.stored, shaCryptFormat(out[:0], j.set, &rs[l].c))
		rs[l].clear()
	}
	clear(blk[:])
	clear(w[:])
	clear(state[:])
}

// sha512Lanes returns SHA-512's round constants and initial state, each
// word repeated in the eight lanes. They are derived as FIPS 180-4 defines
// them — the first 64 bits of the fractional parts of the cube roots of
// the first 80 primes, and of the square roots of the first 8 — rather
// than typed in; the tests compare block8 with crypto/sha512.
var sha512Lanes = sync.OnceValues(func() (*[80][8]uint64, *[8][8]uint64) {
	k, iv := new([80][8]uint64), new([8][8]uint64)
	p := int64(1)
	for t := range 80 {
		p = nextPrime(p)
		// floor(cbrt(p) × 2^64) mod 2^64 = floor(cbrt(p × 2^192)) mod 2^64.
		x := new(big.Int).Lsh(big.NewInt(p), 192)
		word := icbrt(x).Uint64()
		for l := range 8 {
			k[t][l] = word
		}
		if t < 8 {
			y := new(big.Int).Lsh(big.NewInt(p), 128)
			word := new(big.Int).Sqrt(y).Uint64()
			for l := range 8 {
				iv[t][l] = word
			}
		}
	}
	return k, iv
})

func nextPrime(p int64) int64 {
	for p++; !big.NewInt(p).ProbablyPrime(0); p++ {
	}
	return p
}

// icbrt is floor(cbrt(x)) for x > 0, by Newton's method on integers.
func icbrt(x *big.Int) *big.Int {
	r := new(big.Int).Lsh(big.NewInt(1), uint(x.BitLen()/3+1)) // ≥ cbrt(x)
	three := big.NewInt(3)
	for {
		// r' = (2r + x / r²) / 3
		t := new(big.Int).Mul(r, r)
		t.Quo(x, t)
		t.Add(t, new(big.Int).Lsh(r, 1))
		t.Quo(t, three)
		if t.Cmp(r) >= 0 {
			return r
		}
		r = t
	}
}
