package schemes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for every parser of untrusted stored values (house rule 2).
// Seed corpora live in testdata/fuzz/<target>/ and are regenerated from
// the vectors by TestWriteFuzzCorpus (AUTHD_WRITE_FUZZ_CORPUS=1). Run one
// with e.g.:
//
//	go test -run '^$' -fuzz '^FuzzParseStored$' -fuzztime 20s ./schemes/

// checkVerdict is the invariant shared by the targets: never a match
// together with an error, and every error one of the sentinels.
func checkVerdict(t *testing.T, ok bool, err error) {
	t.Helper()
	if ok && err != nil {
		t.Fatalf("match and error at once: %v", err)
	}
	if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownScheme) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrOverBudget) {
		t.Fatalf("error outside the sentinels: %v", err)
	}
}

// fuzzLimits are small enough that a verification within them takes a few
// milliseconds, so the fuzzers can run every scheme on every input: what
// is cheap runs, everything else must come back over budget.
var fuzzLimits = Limits{
	BcryptMaxCost: 5, SHACryptMaxRounds: 5000, PBKDF2MaxIterations: 20000, SCRAMMaxIterations: 8192,
	OTPMaxSequence: 2048, SHA1CryptMaxIterations: 30000, BSDiCryptMaxRounds: 4096, SunMD5MaxRounds: 8192,
	Argon2MaxMemoryKiB: 256, Argon2MaxPasses: 4, Argon2MaxLanes: 4, Argon2MaxWork: 1024,
	ScryptMaxN: 1 << 10, ScryptMaxR: 8, ScryptMaxP: 4, ScryptMaxWork: 1 << 11,
	YescryptMaxN: 1 << 10, YescryptMaxR: 8, YescryptMaxP: 4, YescryptMaxT: 2, YescryptMaxWork: 1 << 11,
	MemoryBudgetKiB: 4096,
}

// budgetedRun runs one verification on a fresh Verifier with fuzzLimits
// and checks the budget's invariants besides checkVerdict's: an
// over-budget answer started no work, and no verification started its
// expensive part twice.
func budgetedRun(t *testing.T, verify func(c call) (bool, error)) (bool, error) {
	t.Helper()
	v := NewVerifier(fuzzLimits)
	var works int
	v.hooks.work = func(string) error { works++; return nil }
	ok, err := verify(call{ctx: context.Background(), v: v})
	checkVerdict(t, ok, err)
	if errors.Is(err, ErrOverBudget) && works != 0 {
		t.Fatalf("over budget (%v) after starting the work", err)
	}
	if works > 1 {
		t.Fatalf("the expensive part started %d times", works)
	}
	return ok, err
}

// FuzzParseStored: "{SCHEME.ENC}data" splitting, scheme lookup and the
// hex/base64 decoding with guessing.
func FuzzParseStored(f *testing.F) {
	f.Add("{SSHA.HEX}cad6b74135daf7c533bbf2b18f73b326494995abda1cb17b")
	f.Add("$1$salt$hash$junk")
	f.Add("{sha.b64}5en6G6MezRroT3XKqkdPOmY/BfQ=")
	f.Fuzz(func(t *testing.T, raw string) {
		for _, split := range []func(string) (string, string){Split, SplitStrict} {
			scheme, data := split(raw)
			if !strings.Contains(raw, data) {
				t.Fatalf("data %q is not part of %q", data, raw)
			}
			if scheme == "" {
				scheme = "PLAIN"
			}
			s, enc, suffix, err := lookup(scheme)
			if err != nil {
				if Known(scheme) {
					t.Fatal("Known disagrees with lookup")
				}
				continue
			}
			if c, ok := Canonical(scheme); !ok || !Known(c) {
				t.Fatalf("Canonical(%q) = %q, %v", scheme, c, ok)
			}
			raw, err := decodeStored(data, s, enc, suffix != "")
			if err == nil && s.rawLen != 0 && len(raw) != s.rawLen {
				t.Fatalf("decoded %d bytes for %s", len(raw), s.name)
			}
		}
	})
}

// FuzzVerify runs whole verifications of every scheme on arbitrary stored
// values and passwords, within fuzzLimits: each one returns a verdict or
// an error (no panic, no hang), and whatever asks for more than the limits
// is over budget without starting the work. The hostile-*
// seeds are the rows of the "hostile input" issue (scrypt p = 2^29, bcrypt
// cost 31, 999,999,999 SHA-crypt rounds, argon2 t = 2^32−1 …).
func FuzzVerify(f *testing.F) {
	f.Add("{SSHA}2tTlYw+ST2Z5 4Ybuh0UIjirV0h5412i5", []byte("secret"), "bob")
	f.Add("{PLAIN-TRUNC}20-The quick brown fox ", []byte("The quick brown fox jumps"), "")
	f.Add("$6$rounds=1000$X$JmiAprIWhJByzaYVl1SHB2moNmktG/zamcszXNMpj0G7mgSpF9W3eXgmmmytWBOFp5f9LR7DkyCh", []byte("secret"), "")
	f.Fuzz(func(t *testing.T, stored string, pw []byte, user string) {
		scheme, data := SplitDefault(stored, "CRYPT")
		budgetedRun(t, func(c call) (bool, error) {
			return c.v.Verify(c.ctx, scheme, data, pw, user)
		})
	})
}

// FuzzSHACrypt: the "$5$/$6$[rounds=N$]salt$hash" parser and a
// verification when the rounds are small.
func FuzzSHACrypt(f *testing.F) {
	f.Add("$6$rounds=1000$abcdefgh$x", []byte("pw"))
	f.Add("$5$rounds=01000$s$", []byte(""))
	f.Fuzz(func(t *testing.T, s string, pw []byte) {
		if !strings.HasPrefix(s, "$5$") && !strings.HasPrefix(s, "$6$") {
			s = "$6$" + s
		}
		set, ok := parseSHACrypt(s)
		if !ok {
			return
		}
		if set.rounds < shaCryptRoundsMin || set.rounds > shaCryptRoundsMax || len(set.salt) > shaCryptSaltMax {
			t.Fatalf("parseSHACrypt(%q) accepted %+v", s, set)
		}
		if set.rounds <= 1200 && len(pw) < 200 {
			out := string(shaCryptAppend(nil, set, pw))
			if !shaCryptMatches(out, pw) {
				t.Fatalf("own output %q does not verify", out)
			}
		}
	})
}

// FuzzArgon2PHC: the PHC string parser (no hashing).
func FuzzArgon2PHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=3,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M")
	f.Add("$argon2i$v=19$m=8,t=3,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := parseArgon2(s)
		if !ok {
			return
		}
		if len(a.salt) < 8 || len(a.sum) < 16 || a.t < 1 || a.p < 1 || uint64(a.m) < 8*uint64(a.p) {
			t.Fatalf("parseArgon2(%q) accepted %+v", s, a)
		}
		back := encodeArgon2(a.variant, a.m, a.t, a.p, a.salt, a.sum)
		if back != s {
			t.Fatalf("re-encoding %q gives %q", s, back)
		}
		budgetedRun(t, func(c call) (bool, error) { return verifyArgon2(c, s, []byte("pw"), "") })
	})
}

// FuzzPBKDF2Formats: Dovecot's "$1$salt$rounds$hex" and the
// OpenLDAP/389-DS "<rounds>$<ab64>$<ab64>" parsers, and the iteration
// budget of each (iterations × output blocks).
func FuzzPBKDF2Formats(f *testing.F) {
	f.Add("$1$I4vnWZ67gFD6a/2O$5000$7d6adc74387efeba4bc6afce443797b9ae0ff813")
	f.Add("10000$Je1Uw19Bfv5lArzZ6V3EPw$g4T/1sqBUYWl9o93MVnyQ/8zKGSkPbKaXXsT8WmysXQJhWy8MRP2JFudSL.N9RklQYgDPxPjnfum/F2f/TrppA")
	f.Fuzz(func(t *testing.T, s string) {
		pw := []byte("pw")
		if _, rounds, want, err := parsePBKDF2(s); err == nil {
			if rounds < 1 || len(want) != 20 {
				t.Fatalf("parsePBKDF2(%q) accepted rounds %d, %d bytes", s, rounds, len(want))
			}
			_, err := budgetedRun(t, func(c call) (bool, error) { return verifyPBKDF2(c, s, pw, "") })
			if (rounds > uint64(fuzzLimits.PBKDF2MaxIterations)) != errors.Is(err, ErrOverBudget) {
				t.Fatalf("%d rounds: %v", rounds, err)
			}
		}
		if rounds, _, want, err := parseLDAPPBKDF2("X", s); err == nil {
			if rounds < 1 || len(want) < 16 {
				t.Fatalf("parseLDAPPBKDF2(%q) accepted rounds %d", s, rounds)
			}
			budgetedRun(t, func(c call) (bool, error) { return verifyLDAPPBKDF2SHA512(c, s, pw, "") })
		}
		budgetedRun(t, func(c call) (bool, error) { return verify389PBKDF2SHA256(c, s, pw, "") })
	})
}

// FuzzAdaptedBase64: passlib's adapted base64 decoder round-trips.
func FuzzAdaptedBase64(f *testing.F) {
	f.Add("Je1Uw19Bfv5lArzZ6V3EPw")
	f.Add("g4T/1sqBUYWl9o93MVnyQ/8zKGSkPbKaXXsT8WmysXQJhWy8MRP2JFudSL.N9Rk=")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := decodeAB64(s)
		if err != nil {
			return
		}
		if b2, err := decodeAB64(encodeAB64(b)); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip of %q failed", s)
		}
	})
}

// FuzzDovecotBase64: the whitespace-tolerant, padding-strict decoder.
func FuzzDovecotBase64(f *testing.F) {
	f.Add("2tTlYw+ST2Z5 4Ybuh0UIjirV0h5412i5")
	f.Add("5en6G6MezRroT3XKqkdPOmY/BfQ")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := decodeDovecotBase64(s)
		if err != nil {
			return
		}
		if b2, err := decodeDovecotBase64(encodeStored(string(b), encBase64)); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("round trip of %q failed", s)
		}
	})
}

// FuzzBcrypt: the "$2?$cc$salt+hash" checks and the key expansion used for
// $2a$/$2x$ (no bcrypt work).
func FuzzBcrypt(f *testing.F) {
	f.Add("$2x$05$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S", []byte("p\xe4ssw\xf6rd"))
	f.Add("$2a$05$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S", []byte("\xff\xa3"))
	f.Fuzz(func(t *testing.T, s string, pw []byte) {
		minor, _, _, err := parseBcrypt(s)
		if err != nil {
			return
		}
		key, err := bcryptKey(pw, minor)
		if err == nil && minor == 'x' && len(key) != 72 {
			t.Fatalf("$2x$ key of %d bytes", len(key))
		}
	})
}

// FuzzYescryptSetting: the "$y$" parameter and salt decoders.
func FuzzYescryptSetting(f *testing.F) {
	f.Add("$y$j9T$7nFfsuDX1IYef27py1qD1/$d9HsuoDgzDiisW7FqrP5lA5lbXlqtdy1u/Cgu6UVrv9")
	f.Add("$y$jA5.$abc$")
	f.Fuzz(func(t *testing.T, s string) {
		if !strings.HasPrefix(s, "$y$") {
			s = "$y$" + s
		}
		prefix, p, salt, ok := parseYescrypt(s)
		if !ok {
			return
		}
		if !strings.HasPrefix(s, prefix) || len(salt) > 64 {
			t.Fatalf("parseYescrypt(%q) = %q, %d salt bytes", s, prefix, len(salt))
		}
		_ = yescryptValid(p)
	})
}

// FuzzDESFamily: traditional DES, bigcrypt and BSDi crypt on arbitrary
// settings (BSDi counts above fuzzLimits are over budget).
func FuzzDESFamily(f *testing.F) {
	f.Add("QVQeX9.zGiyEM", []byte("secret"))
	f.Add("abSsy3GvmHpeQNhzBNrKIGK6", []byte("secretpassword"))
	f.Add("_J9..MEwMKoePzmcLsKY", []byte("secret"))
	f.Fuzz(func(t *testing.T, s string, pw []byte) {
		if strings.HasPrefix(s, "$") {
			return
		}
		budgetedRun(t, func(c call) (bool, error) { return verifyCryptFamily(c, s, pw, "") })
	})
}

// FuzzTextFormats: OTP, SCRAM and PLAIN-TRUNC parsers.
func FuzzTextFormats(f *testing.F) {
	f.Add("sha1 1024 1e0e05c1a0e5fb06 06121006d5c5c61b")
	f.Add("4096,c2FsdA==,@@@@,AAAA")
	f.Add("20-The quick brown fox ")
	f.Fuzz(func(t *testing.T, s string) {
		if st, err := parseOTP(s); err == nil {
			if st.seq < 0 || len(st.seed) > otpMaxSeed {
				t.Fatalf("parseOTP(%q) accepted %+v", s, st)
			}
			_, err := budgetedRun(t, func(c call) (bool, error) { return verifyOTP(c, s, []byte("pw"), "") })
			if (st.seq > int(fuzzLimits.OTPMaxSequence)) != errors.Is(err, ErrOverBudget) {
				t.Fatalf("sequence %d: %v", st.seq, err)
			}
		}
		if c, err := parseSCRAM("SCRAM-SHA-256", sha256.Size, s); err == nil && c.Iterations < scramMinIterations {
			t.Fatalf("parseSCRAM(%q) accepted %d iterations", s, c.Iterations)
		}
		ok, err := verifyPlainTrunc(s, []byte("password"), "")
		checkVerdict(t, ok, err)
	})
}

// TestWriteFuzzCorpus regenerates the committed seed corpora from the
// vectors. It only runs with AUTHD_WRITE_FUZZ_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("AUTHD_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set AUTHD_WRITE_FUZZ_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(target string, n int, args ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, a := range args {
			switch v := a.(type) {
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%04d", n)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	n := map[string]int{}
	add := func(target string, args ...any) {
		key := target + fmt.Sprint(args...)
		if seen[key] || n[target] >= 200 {
			return
		}
		seen[key] = true
		n[target]++
		write(target, n[target], args...)
	}
	for _, v := range loadVectors(t) {
		_, data := Split(v.Stored)
		add("FuzzParseStored", v.Stored)
		add("FuzzVerify", v.Stored, []byte(v.Password), v.User)
		switch {
		case strings.HasPrefix(data, "$5$") || strings.HasPrefix(data, "$6$"):
			add("FuzzSHACrypt", data, []byte(v.Password))
		case strings.HasPrefix(data, "$argon2"):
			add("FuzzArgon2PHC", data)
		case strings.HasPrefix(data, "$2"):
			add("FuzzBcrypt", data, []byte(v.Password))
		case strings.HasPrefix(data, "$y$"):
			add("FuzzYescryptSetting", data)
		case strings.HasPrefix(v.Stored, "{PBKDF2}"):
			add("FuzzPBKDF2Formats", data)
		case strings.HasPrefix(v.Stored, "{OTP}"), strings.HasPrefix(v.Stored, "{SCRAM"), strings.HasPrefix(v.Stored, "{PLAIN-TRUNC}"):
			add("FuzzTextFormats", data)
		case strings.HasPrefix(v.Stored, "{SSHA"), strings.HasPrefix(v.Stored, "{SHA"):
			add("FuzzDovecotBase64", data)
		}
		if len(data) == 13 || strings.HasPrefix(data, "_") {
			add("FuzzDESFamily", data, []byte(v.Password))
		}
	}
	for _, s := range []string{"10000$Je1Uw19Bfv5lArzZ6V3EPw$g4T/1sqBUYWl9o93MVnyQ/8zKGSkPbKaXXsT8WmysXQJhWy8MRP2JFudSL.N9RklQYgDPxPjnfum/F2f/TrppA",
		"10000$IlfapjA351LuDSwYC0IQ8Q$saHqQTuYnjJN/tmAndT.8mJt.6w"} {
		add("FuzzPBKDF2Formats", s)
		for _, part := range strings.Split(s, "$")[1:] {
			add("FuzzAdaptedBase64", part)
		}
	}
	t.Logf("seed files written: %v", n)
}
