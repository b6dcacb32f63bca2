package schemes

import (
	"fmt"
	"reflect"
)

// Limits bound what one stored hash may make a verification spend, one
// field per cost parameter, plus the memory budget shared by concurrent
// memory-hard verifications. A zero (or negative) field means its default
// (DefaultLimits), so the zero Limits is the default budget.
//
// The defaults keep one verification at any limit below about a second of
// CPU on the 2-core development machine (0.3–0.95 s; BenchmarkVerifyAtLimit
// measures each, docs/schemes.md §7 lists the figures) and sit far above
// what password generators write: bcrypt 10–14, passlib's 656,000
// SHA512-CRYPT rounds, OWASP's PBKDF2 counts, argon2 as Dovecot, libsodium
// and OWASP configure it, Debian's yescrypt. The times in the comments
// below are CPU time per verification at the limit.
type Limits struct {
	// BcryptMaxCost: the log2 cost of BLF-CRYPT and crypt "$2?$" values.
	// Default 14 (0.92 s; each step doubles the time). Generators use
	// 10–12 (Dovecot writes 5); x/crypto accepts 31, about 36 hours.
	BcryptMaxCost int64
	// SHACryptMaxRounds: rounds= of "$5$"/"$6$" (SHA256-CRYPT,
	// SHA512-CRYPT). Default 3,000,000 (0.71 s SHA-512, 0.35 s SHA-256,
	// short passwords). passlib writes 656,000 (SHA-512) and 535,000
	// (SHA-256), libxcrypt accepts 999,999,999.
	SHACryptMaxRounds int64
	// PBKDF2MaxIterations: iterations × output blocks of every PBKDF2
	// form ({PBKDF2}, {PBKDF2-SHA*}, 389-DS {PBKDF2_SHA256}): an output
	// longer than the hash multiplies the work. Default 2,000,000 (0.36 s
	// SHA-1, 0.33 s SHA-256, 0.91 s SHA-512); OWASP asks 1,300,000 for
	// HMAC-SHA1, 600,000 for SHA-256, 210,000 for SHA-512, Django 1,000,000.
	PBKDF2MaxIterations int64
	// SCRAMMaxIterations: the iteration count of SCRAM-SHA-1/-256 values
	// when a plaintext password is checked against them. Default
	// 2,000,000 (0.38 s); Dovecot 2.3 writes 4096.
	SCRAMMaxIterations int64
	// OTPMaxSequence: the sequence number of an OTP value, i.e. the number
	// of hash steps. Default 1,048,576 (0.12 s sha1, 0.21 s md4); doveadm
	// writes 1024.
	OTPMaxSequence int64
	// SHA1CryptMaxIterations: NetBSD "$sha1$" iterations (HMAC-SHA1
	// each). Default 4,000,000 (0.70 s); NetBSD writes about 24,680.
	SHA1CryptMaxIterations int64
	// BSDiCryptMaxRounds: the DES encryptions of BSDi "_" values. Default
	// 524,288 (0.78 s: authd's DES is written for correctness, not
	// speed); libxcrypt writes 725 ("_J9..") and accepts 16,777,215.
	BSDiCryptMaxRounds int64
	// SunMD5MaxRounds: the rounds of Sun MD5 crypt ("$md5"), 4096 plus
	// the value's rounds= (one MD5 of 16 to 1,540 bytes each). Default
	// 524,288 (0.62 s); libxcrypt writes 36,864 to 102,399, Solaris 4096
	// plus its policy's count.
	SunMD5MaxRounds int64

	// Argon2MaxMemoryKiB: argon2's m. Default 262,144 (256 MiB, what
	// `doveadm pw -s ARGON2ID -r 3` and libsodium's MODERATE level write).
	Argon2MaxMemoryKiB int64
	// Argon2MaxPasses: argon2's t. Default 32; generators use 1–10.
	Argon2MaxPasses int64
	// Argon2MaxLanes: argon2's p (x/crypto runs one goroutine per lane).
	// Default 16; generators use 1–8.
	Argon2MaxLanes int64
	// Argon2MaxWork: m × t in KiB-passes, which the time is proportional
	// to. Default 786,432 (256 MiB × 3, 0.74 s; 24 MiB × 32 passes 0.60 s):
	// the largest of Dovecot's and libsodium's presets. Dovecot's default
	// is 64 MiB × 3, OWASP's 19 MiB × 2 or 46 MiB × 1.
	Argon2MaxWork int64

	// ScryptMaxN, ScryptMaxR, ScryptMaxP: scrypt's parameters ("$7$" and
	// yescrypt's classic-scrypt flavour). Defaults 2^20, 64, 16.
	ScryptMaxN, ScryptMaxR, ScryptMaxP int64
	// ScryptMaxWork: N × r × p, which the time follows (and, for p = 1,
	// the memory: 128 bytes each). Default 2^21 (N=2^18 r=8 p=1, 256 MiB,
	// 0.80 s; N=2^17 r=1 p=16 0.95 s): libxcrypt writes N=2^14 r=32 p=1,
	// passlib N=2^16 r=8, OWASP asks N=2^17 r=8.
	ScryptMaxWork int64

	// YescryptMaxN, YescryptMaxR, YescryptMaxP, YescryptMaxT: "$y$"
	// parameters. Defaults 2^20, 64, 16, 8.
	YescryptMaxN, YescryptMaxR, YescryptMaxP, YescryptMaxT int64
	// YescryptMaxWork: N × r × (t+1), and × p for the flavours in which
	// every lane fills its own N blocks. Default 2^20 (N=2^15 r=32,
	// 128 MiB, libxcrypt's cost 8, 0.59 s); Debian writes N=2^12 r=32
	// (cost 5, 16 MiB, 0.09 s).
	YescryptMaxWork int64

	// MemoryBudgetKiB: the memory that concurrent argon2, scrypt and
	// yescrypt verifications may hold together; a verification waits for
	// its share, and one needing more than all of it is over budget.
	// Default 524,288 (512 MiB): two verifications at the argon2 limit, as
	// many as two cores run, or eight at Dovecot's default of 64 MiB.
	MemoryBudgetKiB int64
}

// DefaultLimits returns the default budget (what the zero Limits means).
func DefaultLimits() Limits {
	return Limits{
		BcryptMaxCost:          14,
		SHACryptMaxRounds:      3_000_000,
		PBKDF2MaxIterations:    2_000_000,
		SCRAMMaxIterations:     2_000_000,
		OTPMaxSequence:         1 << 20,
		SHA1CryptMaxIterations: 4_000_000,
		BSDiCryptMaxRounds:     1 << 19,
		SunMD5MaxRounds:        1 << 19,

		Argon2MaxMemoryKiB: 256 << 10,
		Argon2MaxPasses:    32,
		Argon2MaxLanes:     16,
		Argon2MaxWork:      3 * 256 << 10,

		ScryptMaxN:    1 << 20,
		ScryptMaxR:    64,
		ScryptMaxP:    16,
		ScryptMaxWork: 1 << 21,

		YescryptMaxN:    1 << 20,
		YescryptMaxR:    64,
		YescryptMaxP:    16,
		YescryptMaxT:    8,
		YescryptMaxWork: 1 << 20,

		MemoryBudgetKiB: 512 << 10,
	}
}

// Validate reports a negative field (zero means the default).
func (l Limits) Validate() error {
	v := reflect.ValueOf(l)
	for i := 0; i < v.NumField(); i++ {
		if n := v.Field(i).Int(); n < 0 {
			return fmt.Errorf("schemes: limit %s is negative (%d)", v.Type().Field(i).Name, n)
		}
	}
	return nil
}

// WithDefaults replaces every zero or negative field by its default.
func (l Limits) WithDefaults() Limits {
	d := reflect.ValueOf(DefaultLimits())
	v := reflect.ValueOf(&l).Elem()
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).Int() <= 0 {
			v.Field(i).SetInt(d.Field(i).Int())
		}
	}
	return l
}
