package schemes

import (
	"crypto/md5"
	"strconv"
	"strings"
)

// Sun MD5 crypt ("$md5$salt$…", "$md5,rounds=N$salt$…"), Solaris' MD5
// scheme, which libxcrypt verifies and Dovecot therefore accepts under the
// crypt family (docs/schemes.md §3). Written from the algorithm as
// libxcrypt 4.4.33 runs it and checked against its hashes
// (testdata/schemes/libxcrypt.json):
//
//   - The setting is "$md5" then ',' or '$', an optional "rounds=N$" (N
//     without leading zeros, at most 2^32-1), and a salt of crypt-alphabet
//     characters ending at the end of the value or at a '$'. That '$' is
//     part of the setting when another '$' or nothing follows it, which
//     is why Solaris-made hashes have "$$" before the digest.
//   - The digest starts as MD5(password ‖ setting); then 4096+N rounds
//     (in 32-bit arithmetic: N close to 2^32 wraps to a small count, as
//     in the C code) each hash the previous digest, a passage of Hamlet
//     with its terminating NUL when a coin toss on that digest says so,
//     and the round number in decimal.
//   - The output is the setting, '$' and the digest in md5crypt's order.
//
// The round count is the whole cost, so it is the budget's parameter
// (Limits.SunMD5MaxRounds).

const sunMD5BaseRounds = 4096

// sunMD5Setting parses the setting of raw: how many rounds, and where the
// setting ends. ok=false is a value libxcrypt refuses.
func sunMD5Setting(raw string) (rounds uint32, setting string, ok bool) {
	p := len("$md5") + 1
	rounds = sunMD5BaseRounds
	if rest, found := strings.CutPrefix(raw[p:], "rounds="); found {
		end := 0
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		if end == 0 || rest[0] == '0' {
			return 0, "", false
		}
		n, err := strconv.ParseUint(rest[:end], 10, 32)
		if err != nil || end == len(rest) || rest[end] != '$' {
			return 0, "", false
		}
		rounds += uint32(n) // wraps as the C code's unsigned int does
		p = len(raw) - len(rest) + end + 1
	}
	for p < len(raw) && cryptIndex(raw[p]) >= 0 {
		p++
	}
	if p < len(raw) && raw[p] != '$' {
		return 0, "", false
	}
	if p < len(raw) && (p+1 == len(raw) || raw[p+1] == '$') {
		p++
	}
	return rounds, raw[:p], true
}

// verifySunMD5 checks a "$md5$" or "$md5," value.
func verifySunMD5(c call, raw string, pw []byte) (bool, error) {
	rounds, setting, ok := sunMD5Setting(raw)
	if !ok {
		return false, nil
	}
	if err := c.within(budgetSunMD5, bound{"rounds", uint64(rounds), uint64(c.limits().SunMD5MaxRounds)}); err != nil {
		return false, err
	}
	if err := c.begin(budgetSunMD5); err != nil {
		return false, err
	}
	return ctEqual(raw, sunMD5Append(nil, setting, rounds, pw)), nil
}

// sunMD5Append appends setting, '$' and the digest.
func sunMD5Append(dst []byte, setting string, rounds uint32, pw []byte) []byte {
	h := md5.New()
	h.Write(pw)
	h.Write([]byte(setting))
	var dg [md5.Size]byte
	h.Sum(dg[:0])
	var num [10]byte
	for i := uint32(0); i < rounds; i++ {
		h.Reset()
		h.Write(dg[:])
		if sunMD5CoinToss(&dg, i) {
			h.Write(hamletQuotation)
		}
		h.Write(strconv.AppendUint(num[:0], uint64(i), 10))
		h.Sum(dg[:0])
	}
	dst = append(dst, setting...)
	dst = append(dst, '$')
	dst = appendMD5CryptDigest(dst, &dg)
	clear(dg[:])
	return dst
}

// sunMD5Bit is bit n (mod 128) of the digest, bytes in order, each from
// its least significant bit.
func sunMD5Bit(d *[md5.Size]byte, n uint32) uint32 {
	n %= 128
	return uint32(d[n/8]>>(n%8)) & 1
}

// sunMD5CoinToss (Alec Muffet's) decides from the previous digest whether
// a round hashes the quotation: two 8-bit numbers x and y are built from
// digest bits at digest-chosen places, halved depending on the bits at
// the round number and 64 past it, and the bits at x and y are compared.
func sunMD5CoinToss(d *[md5.Size]byte, round uint32) bool {
	pick := func(i int) uint32 {
		a := uint32(d[i%16])
		b := uint32(d[(i+3)%16])
		v := uint32(d[(a>>(b%5))%16])
		if b&(1<<(a%8)) != 0 {
			v /= 2
		}
		return sunMD5Bit(d, v)
	}
	var x, y uint32
	for i := 0; i < 8; i++ {
		x |= pick(i) << i
		y |= pick(i+8) << i
	}
	if sunMD5Bit(d, round) != 0 {
		x /= 2
	}
	if sunMD5Bit(d, round+64) != 0 {
		y /= 2
	}
	return sunMD5Bit(d, x) != sunMD5Bit(d, y)
}

// hamletQuotation is the passage the coin toss may add to a round, with
// its NUL: Hamlet, Act III, Scene 1, in the Project Gutenberg text
// (2ws2610) the Solaris algorithm took it from, one line per verse.
var hamletQuotation = []byte("To be, or not to be,--that is the question:--\n" +
	"Whether 'tis nobler in the mind to suffer\n" +
	"The slings and arrows of outrageous fortune\n" +
	"Or to take arms against a sea of troubles,\n" +
	"And by opposing end them?--To die,--to sleep,--\n" +
	"No more; and by a sleep to say we end\n" +
	"The heartache, and the thousand natural shocks\n" +
	"That flesh is heir to,--'tis a consummation\n" +
	"Devoutly to be wish'd. To die,--to sleep;--\n" +
	"To sleep! perchance to dream:--ay, there's the rub;\n" +
	"For in that sleep of death what dreams may come,\n" +
	"When we have shuffled off this mortal coil,\n" +
	"Must give us pause: there's the respect\n" +
	"That makes calamity of so long life;\n" +
	"For who would bear the whips and scorns of time,\n" +
	"The oppressor's wrong, the proud man's contumely,\n" +
	"The pangs of despis'd love, the law's delay,\n" +
	"The insolence of office, and the spurns\n" +
	"That patient merit of the unworthy takes,\n" +
	"When he himself might his quietus make\n" +
	"With a bare bodkin? who would these fardels bear,\n" +
	"To grunt and sweat under a weary life,\n" +
	"But that the dread of something after death,--\n" +
	"The undiscover'd country, from whose bourn\n" +
	"No traveller returns,--puzzles the will,\n" +
	"And makes us rather bear those ills we have\n" +
	"Than fly to others that we know not of?\n" +
	"Thus conscience does make cowards of us all;\n" +
	"And thus the native hue of resolution\n" +
	"Is sicklied o'er with the pale cast of thought;\n" +
	"And enterprises of great pith and moment,\n" +
	"With this regard, their currents turn awry,\n" +
	"And lose the name of action.--Soft you now!\n" +
	"The fair Ophelia!--Nymph, in thy orisons\n" +
	"Be all my sins remember'd.\n\x00")
