//go:build cgo && glibccrypt

package schemes

import (
	"crypto/rand"
	"runtime"
	"testing"
)

// BenchmarkSHA512CryptVsGlibc alternates one pure-Go SHA512-CRYPT
// verification (through Verify) and one system crypt_r() of the same hash
// in every iteration, on one locked OS thread, and reports each side's
// thread CPU time per operation and their ratio. Interleaving and CPU time
// keep the comparison fair on a shared, noisy machine.
func BenchmarkSHA512CryptVsGlibc(b *testing.B) {
	benchVsGlibc(b, "SHA512-CRYPT", benchSHA512Crypt, "secret")
}

func BenchmarkSHA256CryptVsGlibc(b *testing.B) {
	benchVsGlibc(b, "SHA256-CRYPT", benchSHA256Crypt, "Hello world!")
}

func benchVsGlibc(b *testing.B, scheme, stored, pw string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := newLibcCrypter()
	defer c.close()
	c.prepare(pw, stored)
	p := []byte(pw)
	var goCPU, cCPU int64
	for b.Loop() {
		t0 := threadCPUNanos()
		ok, err := Verify(scheme, stored, p, "")
		t1 := threadCPUNanos()
		same := c.run() == stored
		t2 := threadCPUNanos()
		if !ok || err != nil || !same {
			b.Fatal("mismatch")
		}
		goCPU += t1 - t0
		cCPU += t2 - t1
	}
	n := float64(b.N)
	b.ReportMetric(float64(goCPU)/n, "go-cpu-ns/op")
	b.ReportMetric(float64(cCPU)/n, "glibc-cpu-ns/op")
	if cCPU > 0 {
		b.ReportMetric(float64(goCPU)/float64(cCPU), "go/glibc")
	}
}

// BenchmarkGlibcCryptSHA512Crypt is the reference for
// BenchmarkVerifySHA512Crypt: the same hash, verified by the system
// crypt_r() plus a string comparison, as Dovecot does it.
func BenchmarkGlibcCryptSHA512Crypt(b *testing.B) {
	benchLibc(b, benchSHA512Crypt, "secret")
}

func BenchmarkGlibcCryptSHA256Crypt(b *testing.B) {
	benchLibc(b, benchSHA256Crypt, "Hello world!")
}

func BenchmarkGlibcCryptMD5Crypt(b *testing.B) {
	benchLibc(b, "$1$2qNCQi.l$fZN.X7r0wfGMsTxnOQS/I1", "secret")
}

func BenchmarkGlibcCryptDESCrypt(b *testing.B) {
	benchLibc(b, "QVQeX9.zGiyEM", "secret")
}

func BenchmarkGlibcCryptBlfCrypt10(b *testing.B) {
	benchLibc(b, "$2b$10$VEOq/tKpCU35PoaDcbWZLedB1bOb7MuWpKUVLizapQaLWknPWGWoO", "pässwörd-€-日本語-🔑")
}

func benchLibc(b *testing.B, stored, pw string) {
	c := newLibcCrypter()
	defer c.close()
	c.prepare(pw, stored)
	if c.run() != stored {
		b.Fatal("libc crypt does not reproduce the stored hash")
	}
	b.ReportAllocs()
	for b.Loop() {
		if c.run() != stored {
			b.Fatal("mismatch")
		}
	}
}

// TestDifferentialLibcCrypt compares the pure-Go crypt family with the
// system crypt_r() on random passwords and settings: SHA-crypt (random
// rounds and salt lengths, both paths), MD5-crypt, DES, bigcrypt and BSDi.
func TestDifferentialLibcCrypt(t *testing.T) {
	c := newLibcCrypter()
	defer c.close()
	n := 300
	if testing.Short() {
		n = 30
	}
	for i := 0; i < n; i++ {
		pw := make([]byte, i%160)
		_, _ = rand.Read(pw)
		for j := range pw {
			if pw[j] == 0 {
				pw[j] = 'x'
			}
		}
		settings := []string{
			"$6$" + randomCryptSalt(i%17),
			"$5$rounds=" + itoaSmall(1000+i) + "$" + randomCryptSalt(i%17),
			"$1$" + randomCryptSalt(i%9),
			randomCryptSalt(2),
			randomCryptSalt(2) + "XXXXXXXXXXXYYYYYYYYYYY",
			"_" + randomCryptSalt(1) + "..." + randomCryptSalt(4),
		}
		for _, set := range settings {
			want := c.crypt(string(pw), set)
			if want == "" || want[0] == '*' {
				continue
			}
			ok, err := Verify("CRYPT", want, pw, "")
			if !ok || err != nil {
				t.Fatalf("crypt(%x, %q) = %q; authd says %v %v", pw, set, want, ok, err)
			}
		}
	}
}

func itoaSmall(n int) string {
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}
