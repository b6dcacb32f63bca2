package schemes

import (
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The examples of GOST R 34.11-2012 (M1: the digits, M2: a Russian
// sentence in CP1251), the carry example the gost-engine project added
// (a Σ addition that carries across words), and the HMAC example of
// R 50.1.113-2016. Digests are written byte 0 first.
func TestStreebog(t *testing.T) {
	m2, _ := hex.DecodeString("d1e520e2e5f2f0e82c20d1f2f0e8e1eee6e820e2edf3f6e82c20e2e5fef2fa20f120eceef0ff20f1f2f0e5ebe0ece820ede020f5f0e0e1f0fbff20efebfaeafb20c8e3eef0e5e2fb")
	cases := []struct {
		name string
		msg  []byte
		size int
		want string
	}{
		{"M1 256", []byte("012345678901234567890123456789012345678901234567890123456789012"), 32,
			"9d151eefd8590b89daa6ba6cb74af9275dd051026bb149a452fd84e5e57b5500"},
		{"M1 512", []byte("012345678901234567890123456789012345678901234567890123456789012"), 64,
			"1b54d01a4af5b9d5cc3d86d68d285462b19abc2475222f35c085122be4ba1ffa00ad30f8767b3a82384c6574f024c311e2a481332b08ef7f41797891c1646f48"},
		{"M2 256", m2, 32, "9dd2fe4e90409e5da87f53976d7405b0c0cac628fc669a741d50063c557e8f50"},
		{"empty 256", nil, 32, "3f539a213e97c802cc229d474c6aa32a825a360b2a933a949fd925208d9ce1bb"},
		{"empty 512", nil, 64, "8e945da209aa869f0455928529bcae4679e9873ab707b55315f56ceb98bef0a7362f715528356ee83cda5f2aac4c6ad2ba3a715c1bcd81cb8e9f90bf4c1c1a8a"},
		{"carry 256", append([]byte(strings.Repeat("\xee", 64)), append([]byte{0x16}, []byte(strings.Repeat("\x11", 62)+"\x16")...)...), 32,
			"81bb632fa31fcc38b4c379a662dbc58b9bed83f50d3a1b2ce7271ab02d25babb"},
	}
	for _, c := range cases {
		d := &streebog{size: c.size}
		d.Reset()
		// In two writes, so that a block is split across them.
		half := len(c.msg) / 2
		d.Write(c.msg[:half])
		d.Write(c.msg[half:])
		if got := hex.EncodeToString(d.Sum(nil)); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	key, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	msg, _ := hex.DecodeString("0126bdb87800af214341456563780100")
	m := hmac.New(newStreebog256, key)
	m.Write(msg)
	if got, want := hex.EncodeToString(m.Sum(nil)), "a1aa5f7de402d7b3d323f2991c8d4534013137010a83754fd0af6d7cd4922ed9"; got != want {
		t.Errorf("HMAC: %s, want %s", got, want)
	}
}

// TestGostYescryptGenerate: GOST-YESCRYPT writes what libxcrypt's
// crypt_gensalt("$gy$", cost) writes (the setting's shape), and the value
// verifies under its own name and under CRYPT, as libxcrypt would.
func TestGostYescryptGenerate(t *testing.T) {
	for _, c := range []struct {
		rounds int
		prefix string
	}{{1, "$gy$j75$"}, {2, "$gy$j85$"}, {3, "$gy$j7T$"}} {
		v, err := Generate("GOST-YESCRYPT", []byte("pässword"), "", c.rounds)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(v, c.prefix) || len(v) != len(c.prefix)+22+1+43 {
			t.Errorf("cost %d: %q, want %s + 22-character salt + '$' + 43 characters", c.rounds, v, c.prefix)
		}
		for _, scheme := range []string{"GOST-YESCRYPT", "CRYPT", "SHA512-CRYPT"} {
			if ok, err := Verify(scheme, v, []byte("pässword"), ""); !ok || err != nil {
				t.Errorf("%s %q: %v %v", scheme, v, ok, err)
			}
		}
		if ok, err := Verify("GOST-YESCRYPT", v, []byte("password"), ""); ok || err != nil {
			t.Errorf("wrong password: %v %v", ok, err)
		}
	}
	if _, err := Generate("GOST-YESCRYPT", []byte("x"), "", 12); !errors.Is(err, ErrMalformed) {
		t.Errorf("cost 12: %v", err)
	}
}

// TestSunMD5Settings: libxcrypt's refusals are mismatches, never errors,
// and a rounds= that wraps the 32-bit count costs what the wrapped count
// says.
func TestSunMD5Settings(t *testing.T) {
	for _, raw := range []string{
		"$md5,rounds=0$salt$$x", "$md5,rounds=012$salt$$x", "$md5,rounds=$salt$$x",
		"$md5,rounds=4294967296$salt$$x", "$md5,rounds=12x$salt$$x", "$md5$sa!t$x", "$md5$sa-lt$x",
	} {
		if ok, err := Verify("CRYPT", raw, []byte("pw"), ""); ok || err != nil {
			t.Errorf("%q: %v %v, want a mismatch", raw, ok, err)
		}
	}
	// 4096 + 4294963200 is 2^32: no stretching rounds at all.
	r, setting, ok := sunMD5Setting("$md5,rounds=4294963200$ab$$x")
	if !ok || r != 0 || setting != "$md5,rounds=4294963200$ab$" {
		t.Errorf("wrap: %d %q %v", r, setting, ok)
	}
	v := NewVerifier(Limits{SunMD5MaxRounds: 4096})
	val := string(sunMD5Append(nil, setting, 0, []byte("pw")))
	if ok, err := v.Verify(t.Context(), "CRYPT", val, []byte("pw"), ""); !ok || err != nil {
		t.Errorf("wrapped count within a 4096 limit: %v %v", ok, err)
	}
}
