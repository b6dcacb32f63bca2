package schemes

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"testing"
)

// Benchmarks of one verification each (matching password), with
// allocation counts. Run with:
//
//	go test -run '^$' -bench . -benchmem ./schemes/
//
// and, for the glibc/libxcrypt reference in the same run:
//
//	go test -tags glibccrypt -run '^$' -bench 'SHA512Crypt|SHA256Crypt' ./schemes/
func benchVerify(b *testing.B, scheme, data, pw, user string) {
	p := []byte(pw)
	if ok, err := Verify(scheme, data, p, user); !ok || err != nil {
		b.Fatalf("%s does not verify: %v", scheme, err)
	}
	b.ReportAllocs()
	c0 := processCPUNanos()
	for b.Loop() {
		_, _ = Verify(scheme, data, p, user)
	}
	// CPU time per op next to wall time: on a shared machine the wall time
	// also counts waiting for a core.
	if c0 >= 0 {
		b.ReportMetric(float64(processCPUNanos()-c0)/float64(b.N), "cpu-ns/op")
	}
}

const (
	benchSHA512Crypt = "$6$/IIBtIUIxogKuxzv$vHW11GtXaGaNknzrvGOLqA0T69bGVgyiVHoSvdOSK8ehVKmBv/a10UGsWFKqXRfW5zqnAf9vegRVoOYNxRXQk1"
	benchSHA256Crypt = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
)

func BenchmarkVerifySHA512Crypt(b *testing.B) {
	benchVerify(b, "SHA512-CRYPT", benchSHA512Crypt, "secret", "")
}

func BenchmarkVerifySHA256Crypt(b *testing.B) {
	benchVerify(b, "SHA256-CRYPT", benchSHA256Crypt, "Hello world!", "")
}

func BenchmarkVerifySHA512CryptLongPassword(b *testing.B) {
	pw := "a 100-character password, long enough for the streaming path of SHA-crypt ......................... "
	data, _ := Generate("SHA512-CRYPT", []byte(pw), "", 0)
	benchVerify(b, "SHA512-CRYPT", data, pw, "")
}

func BenchmarkVerifyMD5Crypt(b *testing.B) {
	benchVerify(b, "MD5-CRYPT", "$1$2qNCQi.l$fZN.X7r0wfGMsTxnOQS/I1", "secret", "")
}

func BenchmarkVerifyDESCrypt(b *testing.B) {
	benchVerify(b, "CRYPT", "QVQeX9.zGiyEM", "secret", "")
}

func BenchmarkVerifyBlfCrypt10(b *testing.B) {
	benchVerify(b, "CRYPT", "$2b$10$VEOq/tKpCU35PoaDcbWZLedB1bOb7MuWpKUVLizapQaLWknPWGWoO", "pässwörd-€-日本語-🔑", "")
}

func BenchmarkVerifyBlfCrypt5(b *testing.B) {
	benchVerify(b, "BLF-CRYPT", "$2y$05$WGriROok2zyff6XDrLusBec8kzuZtUZFEkcGsGunR8B4dEqSGu.7m", "secret", "")
}

func BenchmarkVerifyArgon2IDDefaults(b *testing.B) {
	// doveadm pw -s ARGON2ID: m=65536 KiB, t=3, p=1.
	benchVerify(b, "ARGON2ID", "$argon2id$v=19$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", "secret", "")
}

func BenchmarkVerifySSHA512(b *testing.B) {
	data, _ := Generate("SSHA512", []byte("secret"), "", 0)
	benchVerify(b, "SSHA512", data, "secret", "")
}

func BenchmarkVerifyPBKDF2(b *testing.B) {
	// Dovecot's default: PBKDF2-HMAC-SHA1, 5000 rounds.
	benchVerify(b, "PBKDF2", "$1$I4vnWZ67gFD6a/2O$5000$7d6adc74387efeba4bc6afce443797b9ae0ff813", "secret", "")
}

func BenchmarkVerifyYescryptDefault(b *testing.B) {
	// Debian 12's /etc/shadow default: N=4096, r=32 (16 MiB).
	benchVerify(b, "CRYPT", "$y$j9T$7nFfsuDX1IYef27py1qD1/$d9HsuoDgzDiisW7FqrP5lA5lbXlqtdy1u/Cgu6UVrv9", "secret", "")
}

func BenchmarkVerifySCRAMSHA256(b *testing.B) {
	data, _ := Generate("SCRAM-SHA-256", []byte("secret"), "", 0)
	benchVerify(b, "SCRAM-SHA-256", data, "secret", "")
}

// BenchmarkVerifyAtLimit measures one verification at each default limit
// (DefaultLimits), i.e. the most a stored value within the default budget
// can cost; docs/schemes.md §7 lists the figures. Values without a
// generator here are mismatches, which cost as much as a match. Run with:
//
//	go test -run '^$' -bench VerifyAtLimit -benchtime 3x ./schemes/
func BenchmarkVerifyAtLimit(b *testing.B) {
	d := DefaultLimits()
	h43, h86 := strings.Repeat("x", 43), strings.Repeat("x", 86)
	phc := func(m, t, p int64) string {
		return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", m, t, p)
	}
	scrypt7 := func(n, r, p int64) string {
		return "$7$" + string(cryptAlphabet[bits.Len64(uint64(n))-1]) + enc6(uint32(r), 5) + enc6(uint32(p), 5) + "saltsalt$" + h43
	}
	ldap := func(iter int64, size int) string {
		return strconv.FormatInt(iter, 10) + "$AAECAwQFBgcICQoLDA0ODw$" + encodeAB64(make([]byte, size))
	}
	scram := func(iter int64, size int) string {
		key := base64.StdEncoding.EncodeToString(make([]byte, size))
		return strconv.FormatInt(iter, 10) + ",c2FsdHNhbHRzYWx0," + key + "," + key
	}
	argonM := d.Argon2MaxWork / d.Argon2MaxPasses // the most memory at the most passes
	cases := []struct{ name, scheme, data string }{
		{"bcrypt/cost", "BLF-CRYPT", fmt.Sprintf("$2y$%02d$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S", d.BcryptMaxCost)},
		{"SHA512-CRYPT/rounds", "SHA512-CRYPT", fmt.Sprintf("$6$rounds=%d$saltsaltsaltsalt$%s", d.SHACryptMaxRounds, h86)},
		{"SHA256-CRYPT/rounds", "SHA256-CRYPT", fmt.Sprintf("$5$rounds=%d$saltsaltsaltsalt$%s", d.SHACryptMaxRounds, h43)},
		{"PBKDF2-SHA1/iterations", "PBKDF2-SHA1", ldap(d.PBKDF2MaxIterations, 20)},
		{"PBKDF2-SHA256/iterations", "PBKDF2-SHA256", ldap(d.PBKDF2MaxIterations, 32)},
		{"PBKDF2-SHA512/iterations", "PBKDF2-SHA512", ldap(d.PBKDF2MaxIterations, 64)},
		{"SCRAM-SHA-1/iterations", "SCRAM-SHA-1", scram(d.SCRAMMaxIterations, 20)},
		{"SCRAM-SHA-256/iterations", "SCRAM-SHA-256", scram(d.SCRAMMaxIterations, 32)},
		{"OTP-sha1/sequence", "OTP", fmt.Sprintf("sha1 %d seedseed 0123456789abcdef", d.OTPMaxSequence)},
		{"OTP-md4/sequence", "OTP", fmt.Sprintf("md4 %d seedseed 0123456789abcdef", d.OTPMaxSequence)},
		{"SHA1-CRYPT/iterations", "CRYPT", fmt.Sprintf("$sha1$%d$saltsalt$%s", d.SHA1CryptMaxIterations, h43[:28])},
		{"BSDI-CRYPT/rounds", "CRYPT", "_" + enc6(uint32(d.BSDiCryptMaxRounds), 4) + "SALTxxxxxxxxxxx"},
		{"SUN-MD5/rounds", "CRYPT", fmt.Sprintf("$md5,rounds=%d$saltsalt$$%s", d.SunMD5MaxRounds-sunMD5BaseRounds, h43[:22])},
		{"ARGON2/m-at-work", "ARGON2ID", phc(d.Argon2MaxMemoryKiB, d.Argon2MaxWork/d.Argon2MaxMemoryKiB, 1)},
		{"ARGON2/t-at-work", "ARGON2ID", phc(argonM, d.Argon2MaxPasses, 1)},
		{"ARGON2/p-at-work", "ARGON2ID", phc(d.Argon2MaxMemoryKiB, d.Argon2MaxWork/d.Argon2MaxMemoryKiB, d.Argon2MaxLanes)},
		{"SCRYPT/work-r8", "CRYPT", scrypt7(d.ScryptMaxWork/8, 8, 1)},
		{"SCRYPT/p-at-work", "CRYPT", scrypt7(d.ScryptMaxWork/d.ScryptMaxP, 1, d.ScryptMaxP)},
		{"SCRYPT/r-at-work", "CRYPT", scrypt7(d.ScryptMaxWork/d.ScryptMaxR, d.ScryptMaxR, 1)},
		{"YESCRYPT/work-r32", "CRYPT", ysSetting('j', bits.Len64(uint64(d.YescryptMaxWork/32))-1, 32, 0, 0) + "$" + h43},
		{"YESCRYPT/t-at-work", "CRYPT", ysSetting('j', bits.Len64(uint64(d.YescryptMaxWork/32/(d.YescryptMaxT)))-1, 32, 0, int(d.YescryptMaxT)-1) + "$" + h43},
		{"GOST-YESCRYPT/work-r32", "CRYPT", "$gy$" + ysSetting('j', bits.Len64(uint64(d.YescryptMaxWork/32))-1, 32, 0, 0)[len("$y$"):] + "$" + h43},
		{"YESCRYPT/classic-p-at-work", "CRYPT", ysSetting('.', bits.Len64(uint64(d.YescryptMaxWork/8/d.YescryptMaxP))-1, 8, int(d.YescryptMaxP), 0) + "$" + h43},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			v := NewVerifier(Limits{})
			var works int
			v.hooks.work = func(string) error { works++; return nil }
			pw := []byte("secret")
			b.ReportAllocs()
			c0 := processCPUNanos()
			for b.Loop() {
				if _, err := v.Verify(context.Background(), c.scheme, c.data, pw, ""); err != nil {
					b.Fatalf("%s: %v", c.data, err)
				}
			}
			if c0 >= 0 {
				b.ReportMetric(float64(processCPUNanos()-c0)/float64(b.N), "cpu-ns/op")
			}
			if works != b.N {
				b.Fatalf("%s: hashing ran %d times in %d verifications", c.data, works, b.N)
			}
		})
	}
}
