package schemes

import "testing"

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
