package schemes

import "fmt"

// Traditional DES crypt(3), libxcrypt's "bigcrypt" and BSDi extended DES
// ("_"), written here because Go's crypto/des cannot express the
// salt-perturbed expansion (E) step crypt(3) uses: each set salt bit k
// swaps E-box output bits k and k+24. The DES core is checked against
// crypto/des with a zero salt (des_test.go), and the crypt functions against
// libxcrypt vectors.
//
// Bits are numbered as in FIPS 46-3: bit 1 is the most significant bit.

var (
	desIP = [64]uint8{
		58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
		62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
		57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
		61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
	}
	desFP = [64]uint8{
		40, 8, 48, 16, 56, 24, 64, 32, 39, 7, 47, 15, 55, 23, 63, 31,
		38, 6, 46, 14, 54, 22, 62, 30, 37, 5, 45, 13, 53, 21, 61, 29,
		36, 4, 44, 12, 52, 20, 60, 28, 35, 3, 43, 11, 51, 19, 59, 27,
		34, 2, 42, 10, 50, 18, 58, 26, 33, 1, 41, 9, 49, 17, 57, 25,
	}
	desE = [48]uint8{
		32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9,
		8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
		16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25,
		24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1,
	}
	desP = [32]uint8{
		16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
		2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25,
	}
	desPC1 = [56]uint8{
		57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18,
		10, 2, 59, 51, 43, 35, 27, 19, 11, 3, 60, 52, 44, 36,
		63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22,
		14, 6, 61, 53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4,
	}
	desPC2 = [48]uint8{
		14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10,
		23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
		41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48,
		44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32,
	}
	desShifts = [16]uint8{1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1}
	desS      = [8][64]uint8{
		{14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7,
			0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
			4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0,
			15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13},
		{15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10,
			3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
			0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15,
			13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9},
		{10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8,
			13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
			13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7,
			1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12},
		{7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15,
			13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
			10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4,
			3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14},
		{2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9,
			14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
			4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14,
			11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3},
		{12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11,
			10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
			9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6,
			4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13},
		{4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1,
			13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
			1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2,
			6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12},
		{13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7,
			1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
			7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8,
			2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11},
	}
)

// desPermute picks the bits listed in table (1-based, MSB first) from the
// width-bit value in.
func desPermute(in uint64, width uint, table []uint8) uint64 {
	var out uint64
	for _, t := range table {
		out = out<<1 | (in>>(width-uint(t)))&1
	}
	return out
}

// desKeySchedule returns the 16 48-bit round keys for a 64-bit key.
func desKeySchedule(key uint64) (ks [16]uint64) {
	cd := desPermute(key, 64, desPC1[:])
	c, d := uint32(cd>>28)&0x0fffffff, uint32(cd)&0x0fffffff
	for i := 0; i < 16; i++ {
		s := desShifts[i]
		c = (c<<s | c>>(28-s)) & 0x0fffffff
		d = (d<<s | d>>(28-s)) & 0x0fffffff
		ks[i] = desPermute(uint64(c)<<28|uint64(d), 56, desPC2[:])
	}
	return ks
}

// desEncrypt encrypts block count times with the salt-perturbed DES.
// saltMask has bit 23-k set when E-box bits k and k+24 (0-based from the
// most significant) are to be swapped.
func desEncrypt(ks *[16]uint64, saltMask uint32, block uint64, count int) uint64 {
	for ; count > 0; count-- {
		b := desPermute(block, 64, desIP[:])
		l, r := uint32(b>>32), uint32(b)
		for i := 0; i < 16; i++ {
			e := desPermute(uint64(r), 32, desE[:])
			hi, lo := uint32(e>>24), uint32(e)&0xffffff
			t := (hi ^ lo) & saltMask
			e = uint64(hi^t)<<24 | uint64(lo^t)
			e ^= ks[i]
			var f uint64
			for g := 0; g < 8; g++ {
				v := (e >> (42 - 6*uint(g))) & 0x3f
				row := (v>>4)&2 | v&1
				col := (v >> 1) & 0xf
				f = f<<4 | uint64(desS[g][row*16+col])
			}
			f = desPermute(f, 32, desP[:])
			l, r = r, l^uint32(f)
		}
		block = desPermute(uint64(r)<<32|uint64(l), 64, desFP[:])
	}
	return block
}

// desSaltMask converts a salt value (bit k = E-box swap k) to the mask
// layout desEncrypt uses.
func desSaltMask(salt uint32, bits int) uint32 {
	var m uint32
	for k := 0; k < bits; k++ {
		if salt&(1<<k) != 0 {
			m |= 0x800000 >> k
		}
	}
	return m
}

// desKeyFromPassword packs up to 8 password bytes, each shifted left by one
// (crypt(3) uses 7 bits per character).
func desKeyFromPassword(pw []byte) uint64 {
	var k uint64
	for i := 0; i < 8; i++ {
		var c byte
		if i < len(pw) {
			c = pw[i]
		}
		k = k<<8 | uint64(c<<1)
	}
	return k
}

// desAppendHash appends the 11 characters encoding a 64-bit block (66 bits,
// two zero bits appended, 6 bits per character, MSB first).
func desAppendHash(dst []byte, block uint64) []byte {
	for i := 0; i < 10; i++ {
		dst = append(dst, cryptAlphabet[(block>>(58-6*uint(i)))&0x3f])
	}
	return append(dst, cryptAlphabet[(block&0xf)<<2])
}

// desSaltValue decodes n crypt-alphabet characters, least significant
// first. ok is false for a character outside the alphabet.
func desSaltValue(s string) (v uint32, ok bool) {
	for i := 0; i < len(s); i++ {
		x := cryptIndex(s[i])
		if x < 0 {
			return 0, false
		}
		v |= uint32(x) << (6 * uint(i))
	}
	return v, true
}

// desCryptAppend appends the traditional 13-character DES crypt of pw with
// the 2-character salt (which the caller has validated).
func desCryptAppend(dst []byte, salt string, pw []byte) []byte {
	sv, _ := desSaltValue(salt[:2])
	ks := desKeySchedule(desKeyFromPassword(pw))
	block := desEncrypt(&ks, desSaltMask(sv, 12), 0, 25)
	dst = append(dst, salt[:2]...)
	return desAppendHash(dst, block)
}

// bigcryptMaxSegments: libxcrypt's bigcrypt hashes at most 128 password
// characters, 8 per segment.
const bigcryptMaxSegments = 16

// bigcryptAppend appends libxcrypt's "bigcrypt": the first 8 characters as
// traditional DES, then each further 8-character segment hashed with the
// first two characters of the previous segment's output as its salt.
func bigcryptAppend(dst []byte, salt string, pw []byte) []byte {
	dst = append(dst, salt[:2]...)
	seg := []byte(salt[:2])
	for i := 0; i < bigcryptMaxSegments; i++ {
		var part []byte
		if 8*i < len(pw) {
			part = pw[8*i : min(len(pw), 8*i+8)]
		} else if i > 0 {
			break
		}
		sv, _ := desSaltValue(string(seg))
		ks := desKeySchedule(desKeyFromPassword(part))
		block := desEncrypt(&ks, desSaltMask(sv, 12), 0, 25)
		start := len(dst)
		dst = desAppendHash(dst, block)
		seg = dst[start : start+2]
	}
	return dst
}

// parseBSDi reads the setting of a BSDi extended DES value: "_" + 4
// characters of count + 4 of salt (24 bits each, least significant first).
// ok is false for characters outside the crypt alphabet. A count of 0
// means 1 (libxcrypt: "zero encryptions doesn't make sense").
func parseBSDi(setting string) (count, salt uint32, ok bool) {
	count, ok1 := desSaltValue(setting[1:5])
	salt, ok2 := desSaltValue(setting[5:9])
	return max(count, 1), salt, ok1 && ok2
}

// bsdiCryptAppend appends BSDi extended DES: the 9-character setting, then
// 11 characters of hash. Password characters past the eighth are folded
// into the key by encrypting the key with itself and XORing the next
// eight. count comes from the stored value: the caller bounds it.
func bsdiCryptAppend(dst []byte, setting string, count, salt uint32, pw []byte) []byte {
	key := desKeyFromPassword(pw)
	for rest := pw[min(8, len(pw)):]; len(rest) > 0; rest = rest[min(8, len(rest)):] {
		ks := desKeySchedule(key)
		key = desEncrypt(&ks, 0, key, 1) ^ desKeyFromPassword(rest)
	}
	ks := desKeySchedule(key)
	block := desEncrypt(&ks, desSaltMask(salt, 24), 0, int(count))
	dst = append(dst, setting...)
	return desAppendHash(dst, block)
}

func generateDESCrypt(pw []byte, _ string, _ int) (string, error) {
	if len(pw) >= libxcryptMaxPassphrase {
		return "", fmt.Errorf("schemes: crypt(3) refuses passwords of %d bytes or more", libxcryptMaxPassphrase)
	}
	return string(desCryptAppend(nil, randomCryptSalt(2), pw)), nil
}
