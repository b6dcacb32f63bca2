package schemes

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"
)

// The budget tests never time anything: a Verifier's work hook counts how
// often a scheme reached its expensive part, so "over budget without doing
// the work" is asserted by structure.

// countingVerifier returns a Verifier with limits l whose work hook counts
// the verifications that started hashing.
func countingVerifier(l Limits) (*Verifier, *atomic.Int64) {
	v := NewVerifier(l)
	var n atomic.Int64
	v.hooks.work = func(string) error { n.Add(1); return nil }
	return v, &n
}

// enc6 writes v as n crypt-alphabet characters, least significant first
// (how "$7$" and BSDi values write their numbers).
func enc6(v uint32, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = cryptAlphabet[v&63]
		v >>= 6
	}
	return string(b)
}

// argon2Value is a real PHC string for pw.
func argon2Value(variant, pw string, m, t, p uint32) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey
	if variant == "argon2i" {
		key = argon2.Key
	}
	return encodeArgon2(variant, m, t, p, salt, key([]byte(pw), salt, t, m, uint8(p), 32))
}

// scrypt7Value is a real "$7$" value for pw.
func scrypt7Value(t *testing.T, pw string, nlog int, r, p uint32) string {
	t.Helper()
	setting := "$7$" + string(cryptAlphabet[nlog]) + enc6(r, 5) + enc6(p, 5) + "saltsalt"
	sum, err := scrypt.Key([]byte(pw), []byte("saltsalt"), 1<<nlog, int(r), int(p), 32)
	if err != nil {
		t.Fatal(err)
	}
	return setting + "$" + string(appendLE64(nil, sum))
}

// ysSetting builds a "$y$" setting: flavor character ('j' the default RW
// flavour, '.' classic scrypt), log2 N, r, and p and t when not 0 (small
// values only: one character each).
func ysSetting(flavor byte, nlog, r, p, t int) string {
	s := "$y$" + string(flavor) + string(cryptAlphabet[nlog-1]) + string(cryptAlphabet[r-1])
	have := 0
	if p > 1 {
		have |= 1
	}
	if t > 0 {
		have |= 2
	}
	if have != 0 {
		s += string(cryptAlphabet[have-1])
		if p > 1 {
			s += string(cryptAlphabet[p-2])
		}
		if t > 0 {
			s += string(cryptAlphabet[t-1])
		}
	}
	return s + "$7nFfsuDX1IYef27py1qD1/"
}

// yescryptValue completes a "$y$" setting with the hash of pw.
func yescryptValue(t *testing.T, setting, pw string) string {
	t.Helper()
	prefix, p, salt, ok := parseYescrypt(setting + "$")
	if !ok || !yescryptValid(p) {
		t.Fatalf("bad test setting %q", setting)
	}
	dk, err := yescryptKDF([]byte(pw), salt, p)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + "$" + string(appendLE64(nil, dk))
}

// gostValue is the "$gy$" value of a yescrypt setting ("$y$…") and pw.
func gostValue(t *testing.T, setting, pw string) string {
	t.Helper()
	prefix, p, salt, ok := parseYescrypt(setting + "$")
	if !ok || !yescryptValid(p) {
		t.Fatalf("bad test setting %q", setting)
	}
	dk, err := yescryptKDF([]byte(pw), salt, p)
	if err != nil {
		t.Fatal(err)
	}
	return string(gostYescryptAppend(nil, "$gy$"+prefix[len("$y$"):], []byte(pw), dk))
}

// sunMD5Value is a Sun MD5 value with rounds= n (4096+n rounds).
func sunMD5Value(pw string, n int) string {
	setting := "$md5,rounds=" + strconv.Itoa(n) + "$saltsalt$"
	return string(sunMD5Append(nil, setting, uint32(sunMD5BaseRounds+n), []byte(pw)))
}

// generate is Generate that fails the test on error.
func generate(t *testing.T, scheme, pw string, rounds int) string {
	t.Helper()
	s, err := Generate(scheme, []byte(pw), "", rounds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ldapPBKDF2SHA1 is an OpenLDAP-style value with a 40-byte (two-block)
// output, so that its work is twice its iteration count.
func ldapPBKDF2SHA1(t *testing.T, pw string, iter int) string {
	t.Helper()
	salt := []byte("0123456789abcdef")
	dk, err := pbkdf2Key(sha1.New, []byte(pw), salt, iter, 40)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(iter) + "$" + encodeAB64(salt) + "$" + encodeAB64(dk)
}

// checkOverBudget asserts err is exactly the expected over-budget error,
// that its labels are in BudgetParams, and that its message names the
// parameter but quotes nothing of the stored value.
func checkOverBudget(t *testing.T, err error, data, scheme, param string, value, limit uint64) {
	t.Helper()
	var ob *OverBudgetError
	if !errors.Is(err, ErrOverBudget) || !errors.As(err, &ob) {
		t.Fatalf("want ErrOverBudget, got %v", err)
	}
	if ob.Scheme != scheme || ob.Param != param || (value != 0 && ob.Value != value) || (limit != 0 && ob.Limit != limit) {
		t.Fatalf("got %s %s = %d (limit %d), want %s %s = %d (limit %d)", ob.Scheme, ob.Param, ob.Value, ob.Limit, scheme, param, value, limit)
	}
	if !slices.Contains(BudgetParams(), BudgetParam{ob.Scheme, ob.Param}) {
		t.Fatalf("%s/%s is not in BudgetParams", ob.Scheme, ob.Param)
	}
	msg := err.Error()
	if !strings.Contains(msg, ob.Scheme+" "+ob.Param) || !strings.Contains(msg, strconv.FormatUint(ob.Value, 10)) || !strings.Contains(msg, strconv.FormatUint(ob.Limit, 10)) {
		t.Fatalf("message %q does not name the parameter, value and limit", msg)
	}
	// Any 8 characters of the stored value after its first 8 (which are
	// a prefix such as "$argon2i"), other than the digits of the value,
	// would be a leak.
	for i := 8; i+8 <= len(data); i++ {
		w := data[i : i+8]
		if strings.Trim(w, "0123456789,=$") != "" && strings.Contains(msg, w) {
			t.Fatalf("message %q quotes the stored value (%q)", msg, w)
		}
	}
}

// budgetCase is one parameter at its limit and one over it.
type budgetCase struct {
	name            string
	lim             Limits
	scheme          string
	at, over        string // stored data (after the {SCHEME} prefix)
	match           bool   // at verifies "pw"
	family, param   string
	overValue, lim2 uint64
}

func budgetCases(t *testing.T) []budgetCase {
	pw := "pw"
	bsdi := func(count uint32) string { return "_" + enc6(count, 4) + "SALTxxxxxxxxxxx" }
	sha1c := func(n int) string { return "$sha1$" + strconv.Itoa(n) + "$saltsalt$xxxxxxxxxxxxxxxxxxxxxxxxxxxx" }
	return []budgetCase{
		{"bcrypt", Limits{BcryptMaxCost: 5}, "BLF-CRYPT", generate(t, "BLF-CRYPT", pw, 5), generate(t, "BLF-CRYPT", pw, 6), true, budgetBcrypt, "cost", 6, 5},
		{"bcrypt via CRYPT", Limits{BcryptMaxCost: 5}, "CRYPT", generate(t, "BLF-CRYPT", pw, 5), generate(t, "BLF-CRYPT", pw, 6), true, budgetBcrypt, "cost", 6, 5},
		{"SHA512-CRYPT", Limits{SHACryptMaxRounds: 2000}, "SHA512-CRYPT", generate(t, "SHA512-CRYPT", pw, 2000), generate(t, "SHA512-CRYPT", pw, 2001), true, budgetSHACrypt, "rounds", 2001, 2000},
		{"SHA256-CRYPT", Limits{SHACryptMaxRounds: 2000}, "SHA256-CRYPT", generate(t, "SHA256-CRYPT", pw, 2000), generate(t, "SHA256-CRYPT", pw, 2001), true, budgetSHACrypt, "rounds", 2001, 2000},
		{"PBKDF2", Limits{PBKDF2MaxIterations: 1000}, "PBKDF2", generate(t, "PBKDF2", pw, 1000), generate(t, "PBKDF2", pw, 1001), true, budgetPBKDF2, "iterations", 1001, 1000},
		{"PBKDF2-SHA512", Limits{PBKDF2MaxIterations: 1000}, "PBKDF2-SHA512", generate(t, "PBKDF2-SHA512", pw, 1000), generate(t, "PBKDF2-SHA512", pw, 1001), true, budgetPBKDF2, "iterations", 1001, 1000},
		// Two output blocks: the work is twice the iterations.
		{"PBKDF2-SHA1 40-byte output", Limits{PBKDF2MaxIterations: 2000}, "PBKDF2-SHA1", ldapPBKDF2SHA1(t, pw, 1000), ldapPBKDF2SHA1(t, pw, 1001), true, budgetPBKDF2, "iterations", 2002, 2000},
		// 389-DS: 256 bytes of SHA-256 are eight blocks.
		{"PBKDF2_SHA256", Limits{PBKDF2MaxIterations: 8000}, "PBKDF2_SHA256", generate(t, "PBKDF2_SHA256", pw, 1000), generate(t, "PBKDF2_SHA256", pw, 1001), true, budgetPBKDF2, "iterations", 8008, 8000},
		{"SCRAM-SHA-256", Limits{SCRAMMaxIterations: 4096}, "SCRAM-SHA-256", generate(t, "SCRAM-SHA-256", pw, 4096), generate(t, "SCRAM-SHA-256", pw, 4097), true, budgetSCRAM, "iterations", 4097, 4096},
		{"SCRAM-SHA-1", Limits{SCRAMMaxIterations: 4096}, "SCRAM-SHA-1", generate(t, "SCRAM-SHA-1", pw, 4096), generate(t, "SCRAM-SHA-1", pw, 4097), true, budgetSCRAM, "iterations", 4097, 4096},
		{"OTP", Limits{OTPMaxSequence: 100}, "OTP", generate(t, "OTP", pw, 100), generate(t, "OTP", pw, 101), true, budgetOTP, "sequence", 101, 100},
		{"sha1crypt", Limits{SHA1CryptMaxIterations: 500}, "CRYPT", sha1c(500), sha1c(501), false, budgetSHA1Crypt, "iterations", 501, 500},
		{"BSDi", Limits{BSDiCryptMaxRounds: 100}, "CRYPT", bsdi(100), bsdi(101), false, budgetBSDi, "rounds", 101, 100},
		// 4096 rounds come with every value; rounds= adds to them.
		{"Sun MD5", Limits{SunMD5MaxRounds: 4196}, "CRYPT", sunMD5Value(pw, 100), sunMD5Value(pw, 101), true, budgetSunMD5, "rounds", 4197, 4196},

		{"argon2 m", Limits{Argon2MaxMemoryKiB: 64}, "ARGON2ID", argon2Value("argon2id", pw, 64, 1, 1), argon2Value("argon2id", pw, 65, 1, 1), true, budgetArgon2, "m", 65, 64},
		{"argon2 t", Limits{Argon2MaxPasses: 2}, "ARGON2I", argon2Value("argon2i", pw, 32, 2, 1), argon2Value("argon2i", pw, 32, 3, 1), true, budgetArgon2, "t", 3, 2},
		{"argon2 p", Limits{Argon2MaxLanes: 2}, "ARGON2ID", argon2Value("argon2id", pw, 32, 1, 2), argon2Value("argon2id", pw, 32, 1, 3), true, budgetArgon2, "p", 3, 2},
		{"argon2 work", Limits{Argon2MaxWork: 128}, "ARGON2", argon2Value("argon2id", pw, 64, 2, 1), argon2Value("argon2id", pw, 64, 3, 1), true, budgetArgon2, "work", 192, 128},
		{"argon2 bare PHC under CRYPT", Limits{Argon2MaxWork: 128}, "CRYPT", argon2Value("argon2id", pw, 64, 2, 1), argon2Value("argon2id", pw, 65, 2, 1), true, budgetArgon2, "work", 130, 128},

		{"scrypt N", Limits{ScryptMaxN: 16}, "CRYPT", scrypt7Value(t, pw, 4, 1, 1), scrypt7Value(t, pw, 5, 1, 1), true, budgetScrypt, "N", 32, 16},
		{"scrypt r", Limits{ScryptMaxR: 2}, "CRYPT", scrypt7Value(t, pw, 3, 2, 1), scrypt7Value(t, pw, 3, 3, 1), true, budgetScrypt, "r", 3, 2},
		{"scrypt p", Limits{ScryptMaxP: 2}, "CRYPT", scrypt7Value(t, pw, 3, 1, 2), scrypt7Value(t, pw, 3, 1, 3), true, budgetScrypt, "p", 3, 2},
		{"scrypt work", Limits{ScryptMaxWork: 64}, "CRYPT", scrypt7Value(t, pw, 4, 2, 2), scrypt7Value(t, pw, 5, 2, 2), true, budgetScrypt, "work", 128, 64},

		{"yescrypt N", Limits{YescryptMaxN: 1 << 6}, "CRYPT", yescryptValue(t, ysSetting('j', 6, 1, 0, 0), pw), yescryptValue(t, ysSetting('j', 7, 1, 0, 0), pw), true, budgetYescrypt, "N", 1 << 7, 1 << 6},
		{"yescrypt r", Limits{YescryptMaxR: 2}, "CRYPT", yescryptValue(t, ysSetting('j', 4, 2, 0, 0), pw), yescryptValue(t, ysSetting('j', 4, 3, 0, 0), pw), true, budgetYescrypt, "r", 3, 2},
		{"yescrypt p", Limits{YescryptMaxP: 2}, "CRYPT", yescryptValue(t, ysSetting('j', 5, 1, 2, 0), pw), yescryptValue(t, ysSetting('j', 5, 1, 3, 0), pw), true, budgetYescrypt, "p", 3, 2},
		{"yescrypt t", Limits{YescryptMaxT: 1}, "CRYPT", yescryptValue(t, ysSetting('j', 5, 1, 0, 1), pw), yescryptValue(t, ysSetting('j', 5, 1, 0, 2), pw), true, budgetYescrypt, "t", 2, 1},
		{"yescrypt work", Limits{YescryptMaxWork: 1 << 8}, "CRYPT", yescryptValue(t, ysSetting('j', 6, 2, 0, 1), pw), yescryptValue(t, ysSetting('j', 6, 2, 0, 2), pw), true, budgetYescrypt, "work", 3 << 7, 1 << 8},
		// gost-yescrypt is yescrypt's work plus three short Streebog hashes:
		// the yescrypt limits apply as they are.
		{"gost-yescrypt N", Limits{YescryptMaxN: 1 << 6}, "CRYPT", gostValue(t, ysSetting('j', 6, 1, 0, 0), pw), gostValue(t, ysSetting('j', 7, 1, 0, 0), pw), true, budgetYescrypt, "N", 1 << 7, 1 << 6},
		{"gost-yescrypt work", Limits{YescryptMaxWork: 1 << 8}, "GOST-YESCRYPT", gostValue(t, ysSetting('j', 6, 2, 0, 1), pw), gostValue(t, ysSetting('j', 6, 2, 0, 2), pw), true, budgetYescrypt, "work", 3 << 7, 1 << 8},
		// The classic flavour runs N per lane: p multiplies its work (the
		// same N, r, p in the RW flavour are within this limit).
		{"yescrypt classic work", Limits{YescryptMaxWork: 1 << 8}, "CRYPT", yescryptValue(t, ysSetting('.', 6, 2, 2, 0), pw), yescryptValue(t, ysSetting('.', 6, 2, 3, 0), pw), true, budgetYescrypt, "work", 3 << 7, 1 << 8},
	}
}

// TestBudgetPerParameter: every limited parameter verifies at its limit
// (the work runs once) and one over it is ErrOverBudget naming the
// parameter, without starting the work.
func TestBudgetPerParameter(t *testing.T) {
	for _, c := range budgetCases(t) {
		t.Run(c.name, func(t *testing.T) {
			v, works := countingVerifier(c.lim)
			ok, err := v.Verify(context.Background(), c.scheme, c.at, []byte("pw"), "")
			if err != nil || ok != c.match || works.Load() != 1 {
				t.Fatalf("at the limit: %v %v, work started %d times", ok, err, works.Load())
			}
			works.Store(0)
			ok, err = v.Verify(context.Background(), c.scheme, c.over, []byte("pw"), "")
			if ok || works.Load() != 0 {
				t.Fatalf("over the limit: %v, work started %d times", ok, works.Load())
			}
			checkOverBudget(t, err, c.over, c.family, c.param, c.overValue, c.lim2)
			// The RW flavour of the classic case is within the same limit.
			if c.name == "yescrypt classic work" {
				rw := yescryptValue(t, ysSetting('j', 6, 2, 3, 0), "pw")
				if ok, err := v.Verify(context.Background(), c.scheme, rw, []byte("pw"), ""); !ok || err != nil {
					t.Fatalf("RW flavour: %v %v", ok, err)
				}
			}
		})
	}
}

// TestHostileRows: the rows of the "hostile input" issue, under the
// default limits, are over budget without any work, through a Verifier
// and through the package-level Verify.
func TestHostileRows(t *testing.T) {
	hash43 := strings.Repeat("x", 43)
	rows := []struct{ stored, scheme, param string }{
		// scrypt N=8 r=1 p=2^29: a 64 GiB allocation, fatal for the runtime.
		{"{CRYPT}$7$1/........Usaltsalt$" + hash43, budgetScrypt, "p"},
		{"{CRYPT}$7$" + "T" + enc6(1, 5) + enc6(1, 5) + "saltsalt$" + hash43, budgetScrypt, "N"},
		{"{CRYPT}$7$" + "5" + enc6(1<<20, 5) + enc6(1, 5) + "saltsalt$" + hash43, budgetScrypt, "r"},
		{"{BLF-CRYPT}$2y$31$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S", budgetBcrypt, "cost"},
		{"{CRYPT}$2b$15$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S", budgetBcrypt, "cost"},
		{"{SHA512-CRYPT}$6$rounds=999999999$saltsaltsaltsalt$" + strings.Repeat("x", 86), budgetSHACrypt, "rounds"},
		{"{SHA256-CRYPT}$5$rounds=999999999$saltsaltsaltsalt$" + hash43, budgetSHACrypt, "rounds"},
		{"{ARGON2ID}$argon2id$v=19$m=65536,t=4294967295,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2, "t"},
		{"{ARGON2ID}$argon2id$v=19$m=4194304,t=1,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2, "m"},
		{"{ARGON2I}$argon2i$v=19$m=4294967295,t=1,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2, "m"},
		{"{ARGON2ID}$argon2id$v=19$m=262144,t=1,p=32768$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2, "p"},
		{"{ARGON2ID}$argon2id$v=19$m=134217720,t=1,p=16777215$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2, "m"},
		{"{ARGON2ID}$argon2id$v=19$m=262144,t=10,p=1$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", budgetArgon2, "work"},
		{"{CRYPT}$y$jbT$7nFfsuDX1IYef27py1qD1/$" + hash43, budgetYescrypt, "N"},    // N = 2^40
		{"{CRYPT}$y$j9T/6$7nFfsuDX1IYef27py1qD1/$" + hash43, budgetYescrypt, "t"},  // t = 9
		{"{CRYPT}$y$jHT$7nFfsuDX1IYef27py1qD1/$" + hash43, budgetYescrypt, "work"}, // N = 2^20, r = 32: 4 GiB
		{"{PBKDF2}$1$saltsalt$4294967295$7d6adc74387efeba4bc6afce443797b9ae0ff813", budgetPBKDF2, "iterations"},
		{"{PBKDF2-SHA512}9999999999999999999$AAECAwQFBgcICQoLDA0ODw$AAECAwQFBgcICQoLDA0ODwABAgMEBQYHCAkKCwwNDg8", budgetPBKDF2, "iterations"},
		{"{SCRAM-SHA-256}2147483647,c2FsdHNhbHRzYWx0,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", budgetSCRAM, "iterations"},
		{"{OTP}sha1 2147483647 seedseed 0123456789abcdef", budgetOTP, "sequence"},
		{"{CRYPT}$sha1$4294967295$saltsalt$xxxxxxxxxxxxxxxxxxxxxxxxxxxx", budgetSHA1Crypt, "iterations"},
		{"{CRYPT}_zzzzSALTxxxxxxxxxxx", budgetBSDi, "rounds"},
	}
	v, works := countingVerifier(Limits{})
	for _, r := range rows {
		scheme, data := SplitDefault(r.stored, "PLAIN")
		for _, verify := range []func() (bool, error){
			func() (bool, error) { return v.Verify(context.Background(), scheme, data, []byte("secret"), "") },
			func() (bool, error) { return Verify(scheme, data, []byte("secret"), "") },
		} {
			ok, err := verify()
			if ok {
				t.Fatalf("%s: match", r.stored)
			}
			checkOverBudget(t, err, data, r.scheme, r.param, 0, 0)
		}
	}
	if n := works.Load(); n != 0 {
		t.Fatalf("hostile rows started hashing %d times", n)
	}
}

// errStop makes the work hook end a verification where hashing would
// start: the real-world parameters below would take seconds together.
var errStop = errors.New("stop before hashing")

// TestDefaultsAcceptRealGenerators: what real generators write is within
// the default limits, i.e. reaches hashing.
func TestDefaultsAcceptRealGenerators(t *testing.T) {
	bcryptCost := func(cost int) string {
		return fmt.Sprintf("$2y$%02d$KN.E500HUwXqF5Xz7F87NeEpPCWeNQmTMiqgthMo69lAJGe38gN.S", cost)
	}
	phc := func(variant string, m, t, p int) string {
		return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$MDwmApm0Ta2ndnHOvqAAsg$GEPG5fVdwiHiHQ/pA/iE8fRVK2CLR3TVrUVFG69FC6M", variant, m, t, p)
	}
	scrypt7 := func(nlog int, r, p uint32) string {
		return "$7$" + string(cryptAlphabet[nlog]) + enc6(r, 5) + enc6(p, 5) + "saltsalt$" + strings.Repeat("x", 43)
	}
	// One output block of the hash: 20, 32 or 64 bytes.
	pbkdf2 := func(iter, size int) string {
		return strconv.Itoa(iter) + "$AAECAwQFBgcICQoLDA0ODw$" + encodeAB64(make([]byte, size))
	}
	scram := func(iter, size int) string {
		key := base64.StdEncoding.EncodeToString(make([]byte, size))
		return strconv.Itoa(iter) + ",c2FsdHNhbHRzYWx0," + key + "," + key
	}
	cases := []struct{ what, scheme, data string }{
		{"bcrypt 12", "BLF-CRYPT", bcryptCost(12)},
		{"bcrypt 13", "BLF-CRYPT", bcryptCost(13)},
		{"bcrypt 14", "CRYPT", bcryptCost(14)},
		{"passlib sha512_crypt", "SHA512-CRYPT", "$6$rounds=656000$saltsaltsaltsalt$" + strings.Repeat("x", 86)},
		{"passlib sha256_crypt", "SHA256-CRYPT", "$5$rounds=535000$saltsaltsaltsalt$" + strings.Repeat("x", 43)},
		{"Dovecot ARGON2ID", "ARGON2ID", phc("argon2id", 65536, 3, 1)},
		{"Dovecot ARGON2I", "ARGON2I", phc("argon2i", 32768, 4, 1)},
		{"Dovecot ARGON2ID -r 3, libsodium MODERATE", "ARGON2ID", phc("argon2id", 262144, 3, 1)},
		{"libsodium INTERACTIVE", "ARGON2ID", phc("argon2id", 65536, 2, 1)},
		{"libsodium argon2i MODERATE", "ARGON2I", phc("argon2i", 131072, 6, 1)},
		{"OWASP 47 MiB", "ARGON2ID", phc("argon2id", 47104, 1, 1)},
		{"OWASP 19 MiB", "ARGON2ID", phc("argon2id", 19456, 2, 1)},
		{"OWASP 7 MiB", "ARGON2ID", phc("argon2id", 7168, 5, 1)},
		{"RFC 9106 second choice", "ARGON2ID", phc("argon2id", 65536, 3, 4)},
		{"argon2-cffi (old), Django", "ARGON2", phc("argon2id", 102400, 2, 8)},
		{"PHP password_hash", "ARGON2ID", phc("argon2id", 65536, 4, 1)},
		{"libxcrypt scrypt", "CRYPT", scrypt7(14, 32, 1)},
		{"passlib scrypt", "CRYPT", scrypt7(16, 8, 1)},
		{"OWASP scrypt", "CRYPT", scrypt7(17, 8, 1)},
		{"Debian yescrypt", "CRYPT", "$y$j9T$7nFfsuDX1IYef27py1qD1/$" + strings.Repeat("x", 43)},
		{"libxcrypt yescrypt cost 8", "CRYPT", "$y$jCT$7nFfsuDX1IYef27py1qD1/$" + strings.Repeat("x", 43)},
		{"OWASP PBKDF2-HMAC-SHA1", "PBKDF2-SHA1", pbkdf2(1300000, 20)},
		{"OWASP PBKDF2-HMAC-SHA256", "PBKDF2-SHA256", pbkdf2(600000, 32)},
		{"Django PBKDF2-SHA256", "PBKDF2-SHA256", pbkdf2(1000000, 32)},
		{"OWASP PBKDF2-HMAC-SHA512", "PBKDF2-SHA512", pbkdf2(210000, 64)},
		{"Dovecot PBKDF2", "PBKDF2", "$1$I4vnWZ67gFD6a/2O$5000$7d6adc74387efeba4bc6afce443797b9ae0ff813"},
		{"Dovecot SCRAM", "SCRAM-SHA-256", scram(4096, 32)},
		{"SCRAM at 600000", "SCRAM-SHA-1", scram(600000, 20)},
		{"doveadm OTP", "OTP", "sha1 1024 seedseed 0123456789abcdef"},
		{"NetBSD sha1crypt", "CRYPT", "$sha1$24680$saltsalt$xxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		{"BSDi _J9..", "CRYPT", "_J9..SALTxxxxxxxxxxx"},
	}
	v := NewVerifier(Limits{})
	v.hooks.work = func(string) error { return errStop }
	for _, c := range cases {
		if _, err := v.Verify(context.Background(), c.scheme, c.data, []byte("secret"), ""); !errors.Is(err, errStop) {
			t.Errorf("%s (%s): want it to reach hashing, got %v", c.what, c.data, err)
		}
	}
}

// TestMemoryBudgetWaits: two verifications needing 60 % of the memory
// budget each. The second waits for the first; cancelled while waiting it
// returns the context's error without hashing; one still waiting when the
// first finishes proceeds. A value needing more than the whole budget is
// over budget at once, without waiting.
func TestMemoryBudgetWaits(t *testing.T) {
	stored := argon2Value("argon2id", "pw", 600, 1, 1) // 600 KiB of blocks + 1 KiB of output
	v := NewVerifier(Limits{MemoryBudgetKiB: 1000})
	started, proceed, waiting := make(chan struct{}), make(chan struct{}), make(chan struct{})
	v.hooks.work = func(string) error {
		started <- struct{}{}
		<-proceed
		return nil
	}
	v.hooks.wait = func() { waiting <- struct{}{} }
	type result struct {
		ok  bool
		err error
	}
	run := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			ok, err := v.Verify(ctx, "ARGON2ID", stored, []byte("pw"), "")
			ch <- result{ok, err}
		}()
		return ch
	}

	first := run(context.Background())
	<-started // the first holds 601 KiB of 1000
	ctx, cancel := context.WithCancel(context.Background())
	second := run(ctx)
	<-waiting
	cancel()
	select {
	case r := <-second:
		if r.ok || !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrOverBudget) {
			t.Fatalf("cancelled while waiting: %v %v, want the context's error", r.ok, r.err)
		}
	case <-started:
		t.Fatal("the second verification got memory the first holds")
	}

	third := run(context.Background())
	<-waiting
	proceed <- struct{}{} // the first finishes and releases its memory
	if r := <-first; !r.ok || r.err != nil {
		t.Fatalf("first: %v %v", r.ok, r.err)
	}
	<-started // now the third has the memory
	proceed <- struct{}{}
	if r := <-third; !r.ok || r.err != nil {
		t.Fatalf("third: %v %v", r.ok, r.err)
	}

	v.hooks.wait = func() { t.Error("waited for memory that can never be enough") }
	big := argon2Value("argon2id", "pw", 1024, 1, 1)
	_, err := v.Verify(context.Background(), "ARGON2ID", big, []byte("pw"), "")
	checkOverBudget(t, err, big, budgetArgon2, "memory", 1025, 1000)
}

// TestContextEndedBeforeHashing: a request whose context has ended does not
// start an expensive verification; a plaintext compare still answers.
func TestContextEndedBeforeHashing(t *testing.T) {
	v, works := countingVerifier(Limits{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v.Verify(ctx, "BLF-CRYPT", generate(t, "BLF-CRYPT", "pw", 4), []byte("pw"), ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("bcrypt with an ended context: %v", err)
	}
	if works.Load() != 0 {
		t.Fatal("hashing started for an ended request")
	}
	if ok, err := v.Verify(ctx, "PLAIN", "pw", []byte("pw"), ""); !ok || err != nil {
		t.Fatalf("PLAIN: %v %v", ok, err)
	}
}

// TestLimitsDefaults: zero fields take the defaults, set fields are kept,
// every default is positive, and Validate refuses negative fields.
func TestLimitsDefaults(t *testing.T) {
	d := DefaultLimits()
	if got := NewVerifier(Limits{}).Limits(); got != d {
		t.Fatalf("zero Limits: %+v, want the defaults %+v", got, d)
	}
	dv := reflect.ValueOf(d)
	for i := 0; i < dv.NumField(); i++ {
		if dv.Field(i).Int() <= 0 {
			t.Errorf("default %s is %d", dv.Type().Field(i).Name, dv.Field(i).Int())
		}
	}
	got := NewVerifier(Limits{BcryptMaxCost: 5, MemoryBudgetKiB: -1}).Limits()
	want := d
	want.BcryptMaxCost = 5
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Limits{ScryptMaxP: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "ScryptMaxP") {
		t.Fatalf("negative ScryptMaxP: %v", err)
	}
}
