package schemes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// yescrypt ("$y$"), the default /etc/shadow hash of Debian 12 and other
// libxcrypt systems, written from the yescrypt specification and the
// reference implementation's documented algorithm (openwall/yescrypt,
// yescrypt-ref.c and yescrypt-common.c). No maintained pure-Go library is
// available through the module proxy. Checked against libxcrypt-produced
// vectors (testdata/vectors.json and testdata/schemes/libxcrypt.json).
//
// Supported: classic scrypt (flavor 0), WORM (flavor 1) and the default RW
// flavor (pwxform with 6 rounds, gather 4, simple 2, 12 KiB S-boxes, the
// only RW flavor yescrypt accepts), any N, r, p and t. Not supported:
// ROM-based hashes (NROM), which need a shared ROM that no crypt(3) string
// carries, and hash upgrades (g), which yescrypt itself rejects.

const (
	ysWORM       = 0x001
	ysRW         = 0x002
	ysRWDefaults = 0x0b6 // RW | ROUNDS_6 | GATHER_4 | SIMPLE_2 | SBOX_12K
	ysRWFlavMask = 0x3fc
	ysPrehash    = 0x10000000

	pwxGather = 4
	pwxSimple = 2
	pwxRounds = 6
	sPairs    = (1 << 8) * pwxSimple // pairs of words in one S-box (S0, S1 or S2)
	sWords    = 3 * sPairs * 2       // 12 KiB
	sMask     = ((1 << 8) - 1) * pwxSimple * 8
)

type yescryptParams struct {
	flags uint32
	n     uint64
	r, p  uint32
	t, g  uint32
	nrom  bool
}

// ysAtoi maps a crypt-alphabet character to 0..63, or 64.
func ysAtoi(c byte) uint32 {
	if v := cryptIndex(c); v >= 0 {
		return uint32(v)
	}
	return 64
}

// ysDecodeUint32 reads yescrypt's variable-length number encoding (the
// first character tells how many follow), returning the rest of s.
func ysDecodeUint32(s string, minVal uint32) (uint32, string, bool) {
	if s == "" {
		return 0, s, false
	}
	c := ysAtoi(s[0])
	s = s[1:]
	if c > 63 {
		return 0, s, false
	}
	dst := minVal
	start, end, chars, nbits := uint32(0), uint32(47), 1, uint32(0)
	for c > end {
		dst += (end + 1 - start) << nbits
		start = end + 1
		end = start + (62-end)/2
		chars++
		nbits += 6
	}
	dst += (c - start) << nbits
	for chars--; chars > 0; chars-- {
		if s == "" {
			return 0, s, false
		}
		c = ysAtoi(s[0])
		s = s[1:]
		if c > 63 {
			return 0, s, false
		}
		nbits -= 6
		dst += c << nbits
	}
	return dst, s, true
}

// ysDecode64 decodes yescrypt's little-endian base-64 (groups of up to four
// characters into up to three bytes; no stray bits allowed).
func ysDecode64(s string, maxLen int) ([]byte, bool) {
	var out []byte
	for len(s) > 0 {
		var value, nbits uint32
		for len(s) > 0 && nbits < 24 {
			c := ysAtoi(s[0])
			if c > 63 {
				return nil, false
			}
			s = s[1:]
			value |= c << nbits
			nbits += 6
		}
		if nbits < 12 {
			return nil, false
		}
		for nbits >= 8 {
			out = append(out, byte(value))
			value >>= 8
			nbits -= 8
		}
		if value != 0 {
			return nil, false
		}
		if len(out) > maxLen {
			return nil, false
		}
	}
	return out, true
}

// parseYescrypt parses "$y$<params>$<salt>$<hash>". prefix is everything
// before the last '$' (the part the output repeats). ok=false is what
// libxcrypt refuses (then a mismatch for Dovecot).
func parseYescrypt(raw string) (prefix string, p yescryptParams, salt []byte, ok bool) {
	s := raw[3:]
	flavor, s, ok := ysDecodeUint32(s, 0)
	if !ok {
		return "", p, nil, false
	}
	switch {
	case flavor < ysRW:
		p.flags = flavor
	case flavor <= ysRW+(ysRWFlavMask>>2):
		p.flags = ysRW + (flavor-ysRW)<<2
	default:
		return "", p, nil, false
	}
	nlog, s, ok := ysDecodeUint32(s, 1)
	if !ok || nlog > 63 {
		return "", p, nil, false
	}
	p.n = 1 << nlog
	if p.r, s, ok = ysDecodeUint32(s, 1); !ok {
		return "", p, nil, false
	}
	p.p = 1
	if s != "" && s[0] != '$' {
		var have uint32
		if have, s, ok = ysDecodeUint32(s, 1); !ok {
			return "", p, nil, false
		}
		if have&1 != 0 {
			if p.p, s, ok = ysDecodeUint32(s, 2); !ok {
				return "", p, nil, false
			}
		}
		if have&2 != 0 {
			if p.t, s, ok = ysDecodeUint32(s, 1); !ok {
				return "", p, nil, false
			}
		}
		if have&4 != 0 {
			if p.g, s, ok = ysDecodeUint32(s, 1); !ok {
				return "", p, nil, false
			}
		}
		if have&8 != 0 {
			var romLog uint32
			if romLog, s, ok = ysDecodeUint32(s, 1); !ok || romLog > 63 {
				return "", p, nil, false
			}
			p.nrom = true
		}
	}
	if s == "" || s[0] != '$' {
		return "", p, nil, false
	}
	s = s[1:]
	saltText := s
	if i := strings.LastIndexByte(s, '$'); i >= 0 {
		saltText = s[:i]
	}
	prefix = raw[:len(raw)-len(s)+len(saltText)]
	if salt, ok = ysDecode64(saltText, 64); !ok {
		return "", p, nil, false
	}
	return prefix, p, salt, true
}

// yescryptValid applies yescrypt_kdf's parameter checks (EINVAL cases).
func yescryptValid(p yescryptParams) bool {
	switch p.flags & 3 {
	case 0:
		if p.flags != 0 || p.t != 0 {
			return false
		}
	case ysWORM:
		if p.flags != ysWORM {
			return false
		}
	case ysRW:
		if p.flags != ysRWDefaults {
			return false
		}
	default:
		return false
	}
	if p.g != 0 || uint64(p.r)*uint64(p.p) >= 1<<30 || p.n <= 1 || p.r < 1 || p.p < 1 {
		return false
	}
	if p.flags&ysRW != 0 && p.n/uint64(p.p) <= 1 {
		return false
	}
	return true
}

// verifyYescrypt checks a "$y$" value. N (up to 2^63), r, p and t come
// from the string, so they are checked against the Limits, and the memory
// reserved from the budget, before anything is allocated.
func verifyYescrypt(c call, raw string, pw []byte) (bool, error) {
	prefix, dk, ok, err := yescryptDerive(c, raw, pw)
	if !ok || err != nil {
		return false, err
	}
	out := make([]byte, 0, len(prefix)+1+43)
	out = append(out, prefix...)
	out = append(out, '$')
	out = appendLE64(out, dk)
	return ctEqual(raw, out), nil
}

// yescryptDerive parses a "$y$" value, checks its parameters against the
// Limits, reserves its memory and computes the 32-byte key. prefix is the
// value up to the salt's end. ok=false is a value libxcrypt refuses (a
// mismatch).
func yescryptDerive(c call, raw string, pw []byte) (prefix string, dk []byte, ok bool, err error) {
	prefix, p, salt, ok := parseYescrypt(raw)
	if !ok {
		return "", nil, false, nil
	}
	if p.nrom {
		return "", nil, false, fmt.Errorf("%w: yescrypt with a ROM", ErrUnsupported)
	}
	if !yescryptValid(p) {
		return "", nil, false, nil
	}
	if err := yescryptWithin(c, p); err != nil {
		return "", nil, false, err
	}
	release, err := c.reserve(budgetYescrypt, yescryptMemoryKiB(p))
	if err != nil {
		return "", nil, false, err
	}
	defer release()
	if err := c.begin(budgetYescrypt); err != nil {
		return "", nil, false, err
	}
	dk, err = yescryptKDF(pw, salt, p)
	if err != nil {
		return "", nil, false, nil
	}
	return prefix, dk, true, nil
}

// yescryptWithin compares p with the Limits. The work is N·r·(t+1): the
// time follows N·r per pass and t adds passes; in the flavours without
// the RW mode (classic scrypt, WORM) every lane fills its own N blocks, so
// it is also multiplied by p there.
func yescryptWithin(c call, p yescryptParams) error {
	lim := c.limits()
	work := mulSat(p.n, uint64(p.r), uint64(p.t)+1)
	if p.flags&ysRW == 0 {
		work = mulSat(work, uint64(p.p))
	}
	return c.within(budgetYescrypt,
		bound{"N", p.n, uint64(lim.YescryptMaxN)},
		bound{"r", uint64(p.r), uint64(lim.YescryptMaxR)},
		bound{"p", uint64(p.p), uint64(lim.YescryptMaxP)},
		bound{"t", uint64(p.t), uint64(lim.YescryptMaxT)},
		bound{"work", work, uint64(lim.YescryptMaxWork)},
	)
}

// yescryptMemoryKiB is what yescryptKDF allocates: the classic flavour is
// x/crypto's scrypt (scryptMemoryKiB); otherwise V (N blocks of 128·r
// bytes), B twice (bytes and words, p blocks each), XY (two blocks) and
// 12 KiB of S-boxes per lane, and once more at N/64 when the password is
// pre-hashed (the first pass's memory may not be collected yet).
func yescryptMemoryKiB(p yescryptParams) uint64 {
	if p.flags == 0 {
		return scryptMemoryKiB(p.n, p.r, p.p)
	}
	body := func(n uint64) uint64 {
		blocks := addSat(n, mulSat(2, uint64(p.p)), 2)
		return addSat(mulSat(128, uint64(p.r), blocks), mulSat(sWords*4, uint64(p.p)))
	}
	return kib(addSat(body(p.n), body(p.n>>6)))
}

// yescryptKDF is yescrypt_kdf: for large RW parameters the password is
// first pre-hashed with N/64.
func yescryptKDF(pw, salt []byte, p yescryptParams) ([]byte, error) {
	if p.flags == 0 {
		return scrypt.Key(pw, salt, int(p.n), int(p.r), int(p.p), 32)
	}
	np := p.n / uint64(p.p)
	if p.flags&ysRW != 0 && np >= 0x100 && np*uint64(p.r) >= 0x20000 {
		dk := yescryptBody(pw, salt, p.flags|ysPrehash, p.n>>6, p.r, p.p, 0)
		pw = dk
	}
	return yescryptBody(pw, salt, p.flags, p.n, p.r, p.p, p.t), nil
}

// pwxCtx is one lane's pwxform state: the S-box words and the pair offsets
// of S0, S1, S2 inside them, and the write index w.
type pwxCtx struct {
	s          []uint32
	s0, s1, s2 uint32
	w          uint32
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func yescryptBody(passwd, salt []byte, flags uint32, n uint64, r, p, t uint32) []byte {
	var pre []byte
	if flags != 0 {
		key := "yescrypt-prehash"[:8]
		if flags&ysPrehash != 0 {
			key = "yescrypt-prehash"
		}
		pre = hmacSHA256([]byte(key), passwd)
		passwd = pre
	}
	bBytes, _ := pbkdf2Key(sha256.New, passwd, salt, 1, 128*int(r)*int(p))
	if flags != 0 {
		// The pre-hashed password buffer is overwritten with B's first 32
		// bytes and updated inside smix; the final PBKDF2 uses it.
		copy(pre, bBytes[:32])
	}
	b := make([]uint32, len(bBytes)/4)
	for i := range b {
		b[i] = binary.LittleEndian.Uint32(bBytes[4*i:])
	}
	v := make([]uint32, 32*uint64(r)*n)
	xy := make([]uint32, 64*r)
	if flags&ysRW != 0 {
		sbox := make([]uint32, sWords*int(p))
		ctx := make([]pwxCtx, p)
		for i := range ctx {
			ctx[i].s = sbox[i*sWords : (i+1)*sWords]
		}
		ysSmix(b, r, n, p, t, flags, v, xy, ctx, pre)
	} else {
		s := 32 * r
		for i := uint32(0); i < p; i++ {
			ysSmix(b[i*s:(i+1)*s], r, n, 1, t, flags, v, xy, nil, nil)
		}
	}
	for i, w := range b {
		binary.LittleEndian.PutUint32(bBytes[4*i:], w)
	}
	dk, _ := pbkdf2Key(sha256.New, passwd, bBytes, 1, 32)
	if flags != 0 && flags&ysPrehash == 0 {
		// SCRAM-style final step: StoredKey = H(HMAC(dk, "Client Key")).
		ck := hmacSHA256(dk, []byte("Client Key"))
		sum := sha256.Sum256(ck)
		dk = sum[:]
	}
	return dk
}

func ysSmix(b []uint32, r uint32, n uint64, p, t, flags uint32, v, xy []uint32, ctx []pwxCtx, passwd []byte) {
	s := uint64(32 * r)
	nchunk := n / uint64(p)
	nloopAll := nchunk
	if flags&ysRW != 0 {
		if t <= 1 {
			if t != 0 {
				nloopAll *= 2
			}
			nloopAll = (nloopAll + 2) / 3
		} else {
			nloopAll *= uint64(t - 1)
		}
	} else if t != 0 {
		if t == 1 {
			nloopAll += (nloopAll + 1) / 2
		}
		nloopAll *= uint64(t)
	}
	var nloopRW uint64
	if flags&ysRW != 0 {
		nloopRW = nloopAll / uint64(p)
	}
	nchunk &^= 1
	nloopAll = (nloopAll + 1) &^ 1
	nloopRW = (nloopRW + 1) &^ 1

	var vchunk uint64
	for i := uint32(0); i < p; i++ {
		np := nchunk
		if i == p-1 {
			np = n - vchunk
		}
		bp := b[uint64(i)*s : uint64(i+1)*s]
		vp := v[vchunk*s:]
		var c *pwxCtx
		if flags&ysRW != 0 {
			c = &ctx[i]
			// The S-boxes are filled by SMix1 over 96 blocks with r=1.
			ysSmix1(bp[:32], 1, uint64(sWords/32), 0, c.s, xy, nil)
			c.s2, c.s1, c.s0, c.w = 0, sPairs, 2*sPairs, 0
			if i == 0 {
				var key [64]byte
				for k, w := range bp[s-16:] {
					binary.LittleEndian.PutUint32(key[4*k:], w)
				}
				copy(passwd, hmacSHA256(key[:], passwd[:32]))
			}
		}
		ysSmix1(bp, r, np, flags, vp, xy, c)
		ysSmix2(bp, r, p2floor(np), nloopRW, flags, vp, xy, c)
		vchunk += nchunk
	}
	for i := uint32(0); i < p; i++ {
		var c *pwxCtx
		if flags&ysRW != 0 {
			c = &ctx[i]
		}
		ysSmix2(b[uint64(i)*s:uint64(i+1)*s], r, n, nloopAll-nloopRW, flags&^ysRW, v, xy, c)
	}
}

func p2floor(x uint64) uint64 {
	if x == 0 {
		return 0
	}
	return 1 << (63 - bits.LeadingZeros64(x))
}

func ysWrap(x, i uint64) uint64 {
	n := p2floor(i)
	return (x & (n - 1)) + (i - n)
}

func ysIntegerify(x []uint32, r uint32) uint64 {
	w := x[(2*r-1)*16:]
	return uint64(w[13])<<32 + uint64(w[0])
}

// ysShuffleIn/Out convert between memory order and the "SIMD-shuffled"
// word order yescrypt computes in (word i of each 64-byte block is stored
// at position i·5 mod 16).
func ysShuffleIn(dst, src []uint32) {
	for k := 0; k < len(dst); k += 16 {
		for i := 0; i < 16; i++ {
			dst[k+i] = src[k+i*5%16]
		}
	}
}

func ysShuffleOut(dst, src []uint32) {
	for k := 0; k < len(src); k += 16 {
		for i := 0; i < 16; i++ {
			dst[k+i*5%16] = src[k+i]
		}
	}
}

func ysBlockMix(x, y []uint32, r uint32, c *pwxCtx) {
	if c != nil {
		ysBlockMixPwxform(x, c, r)
	} else {
		ysBlockMixSalsa8(x, y, r)
	}
}

func ysSmix1(b []uint32, r uint32, n uint64, flags uint32, v, xy []uint32, c *pwxCtx) {
	s := uint64(32 * r)
	x, y := xy[:s], xy[s:2*s]
	ysShuffleIn(x, b)
	for i := uint64(0); i < n; i++ {
		copy(v[i*s:(i+1)*s], x)
		if flags&ysRW != 0 && i > 1 {
			j := ysWrap(ysIntegerify(x, r), i)
			xorWords(x, v[j*s:(j+1)*s])
		}
		ysBlockMix(x, y, r, c)
	}
	ysShuffleOut(b, x)
}

func ysSmix2(b []uint32, r uint32, n, nloop uint64, flags uint32, v, xy []uint32, c *pwxCtx) {
	s := uint64(32 * r)
	x, y := xy[:s], xy[s:2*s]
	ysShuffleIn(x, b)
	for i := uint64(0); i < nloop; i++ {
		j := ysIntegerify(x, r) & (n - 1)
		vj := v[j*s : (j+1)*s]
		xorWords(x, vj)
		if flags&ysRW != 0 {
			copy(vj, x)
		}
		ysBlockMix(x, y, r, c)
	}
	ysShuffleOut(b, x)
}

func xorWords(dst, src []uint32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// ysSalsa applies the Salsa20 core (rounds/2 double rounds) to a block in
// shuffled order.
func ysSalsa(b []uint32, rounds int) {
	var x [16]uint32
	for i := 0; i < 16; i++ {
		x[i*5%16] = b[i]
	}
	rot := bits.RotateLeft32
	for i := 0; i < rounds; i += 2 {
		x[4] ^= rot(x[0]+x[12], 7)
		x[8] ^= rot(x[4]+x[0], 9)
		x[12] ^= rot(x[8]+x[4], 13)
		x[0] ^= rot(x[12]+x[8], 18)
		x[9] ^= rot(x[5]+x[1], 7)
		x[13] ^= rot(x[9]+x[5], 9)
		x[1] ^= rot(x[13]+x[9], 13)
		x[5] ^= rot(x[1]+x[13], 18)
		x[14] ^= rot(x[10]+x[6], 7)
		x[2] ^= rot(x[14]+x[10], 9)
		x[6] ^= rot(x[2]+x[14], 13)
		x[10] ^= rot(x[6]+x[2], 18)
		x[3] ^= rot(x[15]+x[11], 7)
		x[7] ^= rot(x[3]+x[15], 9)
		x[11] ^= rot(x[7]+x[3], 13)
		x[15] ^= rot(x[11]+x[7], 18)

		x[1] ^= rot(x[0]+x[3], 7)
		x[2] ^= rot(x[1]+x[0], 9)
		x[3] ^= rot(x[2]+x[1], 13)
		x[0] ^= rot(x[3]+x[2], 18)
		x[6] ^= rot(x[5]+x[4], 7)
		x[7] ^= rot(x[6]+x[5], 9)
		x[4] ^= rot(x[7]+x[6], 13)
		x[5] ^= rot(x[4]+x[7], 18)
		x[11] ^= rot(x[10]+x[9], 7)
		x[8] ^= rot(x[11]+x[10], 9)
		x[9] ^= rot(x[8]+x[11], 13)
		x[10] ^= rot(x[9]+x[8], 18)
		x[12] ^= rot(x[15]+x[14], 7)
		x[13] ^= rot(x[12]+x[15], 9)
		x[14] ^= rot(x[13]+x[12], 13)
		x[15] ^= rot(x[14]+x[13], 18)
	}
	for i := 0; i < 16; i++ {
		b[i] += x[i*5%16]
	}
}

func ysBlockMixSalsa8(b, y []uint32, r uint32) {
	var x [16]uint32
	copy(x[:], b[(2*r-1)*16:])
	for i := uint32(0); i < 2*r; i++ {
		xorWords(x[:], b[i*16:])
		ysSalsa(x[:], 8)
		copy(y[i*16:], x[:])
	}
	for i := uint32(0); i < r; i++ {
		copy(b[i*16:(i+1)*16], y[2*i*16:])
		copy(b[(i+r)*16:(i+r+1)*16], y[(2*i+1)*16:])
	}
}

// ysBlockMixPwxform: with 64-byte pwxform blocks (gather 4 × simple 2 × 8
// bytes) every 64-byte sub-block goes through pwxform, chained, and the
// last one through Salsa20/2.
func ysBlockMixPwxform(b []uint32, c *pwxCtx, r uint32) {
	r1 := 2 * r
	var x [16]uint32
	copy(x[:], b[(r1-1)*16:])
	for i := uint32(0); i < r1; i++ {
		if r1 > 1 {
			xorWords(x[:], b[i*16:])
		}
		ysPwxform(&x, c)
		copy(b[i*16:(i+1)*16], x[:])
	}
	ysSalsa(b[(r1-1)*16:r1*16], 2)
}

// ysPwxform: x is [gather][simple][lo, hi]; each lane does six rounds of
// x = (hi·lo + S0[..]) ^ S1[..], writing rounds 1..4 into S2.
func ysPwxform(x *[16]uint32, c *pwxCtx) {
	sb := c.s
	s0, s1, s2, w := c.s0, c.s1, c.s2, c.w
	for i := 0; i < pwxRounds; i++ {
		for j := 0; j < pwxGather; j++ {
			base := j * pwxSimple * 2
			p0 := s0 + (x[base]&sMask)/8
			p1 := s1 + (x[base+1]&sMask)/8
			for k := 0; k < pwxSimple; k++ {
				q0, q1 := 2*(p0+uint32(k)), 2*(p1+uint32(k))
				a := uint64(sb[q0+1])<<32 + uint64(sb[q0])
				d := uint64(sb[q1+1])<<32 + uint64(sb[q1])
				lo, hi := x[base+2*k], x[base+2*k+1]
				val := (uint64(hi)*uint64(lo) + a) ^ d
				x[base+2*k], x[base+2*k+1] = uint32(val), uint32(val>>32)
				if i != 0 && i != pwxRounds-1 {
					q := 2 * (s2 + w)
					sb[q], sb[q+1] = uint32(val), uint32(val>>32)
					w++
				}
			}
		}
	}
	c.s0, c.s1, c.s2 = s2, s0, s1
	c.w = w & (sPairs - 1)
}
