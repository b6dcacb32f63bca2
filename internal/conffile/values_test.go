package conffile

import (
	"strings"
	"testing"
	"time"
)

func TestParseBool(t *testing.T) {
	for _, v := range []string{"yes", "YES", "Yes", "y", "Y", "1"} {
		if b, err := ParseBool(v); err != nil || !b {
			t.Errorf("%q -> %v, %v", v, b, err)
		}
	}
	for _, v := range []string{"no", "NO", "No"} {
		if b, err := ParseBool(v); err != nil || b {
			t.Errorf("%q -> %v, %v", v, b, err)
		}
	}
	// Dovecot 2.3 rejects these too (checked with doveconf).
	for _, v := range []string{"0", "n", "N", "true", "false", "on", "off", "", " yes"} {
		if _, err := ParseBool(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := map[string]int64{
		"0": 0, "100": 100, "100B": 100, "100 b": 100, "512k": 512 << 10, "512K": 512 << 10,
		"10M": 10 << 20, "10 M": 10 << 20, "10 MiB": 10 << 20, "10mb": 10 << 20, "10Mi": 10 << 20,
		"1G": 1 << 30, "1gib": 1 << 30, "1T": 1 << 40, "2 kB": 2048,
	}
	for in, want := range tests {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%q -> %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "10 x", "10BB", "10 MiBs", "-1", "1.5M", "10 M B", "99999999999T", "18446744073709551616"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := map[string]time.Duration{
		"0": 0, "2s": 2 * time.Second, "2 secs": 2 * time.Second, "2 Sec": 2 * time.Second,
		"1 second": time.Second, "30 mins": 30 * time.Minute, "1m": time.Minute, "1 mi": time.Minute,
		"1 minute": time.Minute, "1h": time.Hour, "1 hours": time.Hour, "1 HOUR": time.Hour,
		"1 d": 24 * time.Hour, "1 day": 24 * time.Hour, "2 weeks": 14 * 24 * time.Hour,
		"1 w": 7 * 24 * time.Hour, "2000 ms": 2 * time.Second, "3000 msecs": 3 * time.Second,
		"1000 milliseconds": time.Second, "0 ms": 0, "4294967295 s": 4294967295 * time.Second,
	}
	for in, want := range tests {
		if got, err := ParseDuration(in, false); err != nil || got != want {
			t.Errorf("%q -> %v, %v; want %v", in, got, err, want)
		}
	}
	// Rejected by Dovecot 2.3 as well (doveconf: "missing units",
	// "Invalid time interval", "Milliseconds not supported").
	for _, in := range []string{"2", "", "s", "1 hr", "1 sex", "2500 ms", "1.5 s", "1 secss", "99999999999 secs", "4294967296 s", "1 s x"} {
		if _, err := ParseDuration(in, false); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	if d, err := ParseDuration("500 ms", true); err != nil || d != 500*time.Millisecond {
		t.Errorf("500 ms with msOK -> %v, %v", d, err)
	}
	if _, err := ParseDuration("500", true); err == nil {
		t.Error("bare 500 accepted")
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 2 * time.Second: "2 secs", time.Hour: "1 hours", 90 * time.Second: "90 secs",
		2 * time.Minute: "2 mins", 48 * time.Hour: "2 days", 14 * 24 * time.Hour: "2 weeks",
		1500 * time.Millisecond: "1500 ms",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := ParseDuration(FormatDuration(d), true); err != nil || back != d {
			t.Errorf("round trip %v -> %v, %v", d, back, err)
		}
	}
	for n, want := range map[int64]string{0: "0", 100: "100 B", 2048: "2 k", 10 << 20: "10 M", 3 << 30: "3 G", 1 << 40: "1 T", 1025: "1025 B"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Errorf("round trip %d -> %d, %v", n, back, err)
		}
	}
}

func TestParseOctal(t *testing.T) {
	tests := map[string]uint32{"0600": 0o600, "0666": 0o666, "0": 0, "00": 0, "666": 666, "384": 0o600}
	for in, want := range tests {
		if got, err := ParseOctal(in); err != nil || got != want {
			t.Errorf("%q -> %o, %v; want %o", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0x1", "0888", "-1", "rw"} {
		if _, err := ParseOctal(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestExpandVariables(t *testing.T) {
	t.Setenv("AUTHD_TEST_ENV", "/env")
	vals := map[string]string{"a": "A", "mechs": "plain login", "empty": ""}
	lookup := func(n string) (string, bool) { v, ok := vals[n]; return v, ok }
	tests := map[string]string{
		"$a":                        "A",
		"$a x":                      "A x",
		"x $a":                      "x A",
		"$mechs cram-md5":           "plain login cram-md5",
		"a   b  $a":                 "a b A", // runs of spaces collapse
		"x\t$a":                     "x\t$a", // only spaces split words
		"x \t $a":                   "x A",   // but all blanks are skipped
		"$ENV:AUTHD_TEST_ENV":       "/env",
		"$ENV:AUTHD_TEST_UNSET_X y": " y",
		"$empty z":                  " z",
	}
	for in, want := range tests {
		got, err := ExpandVariables(in, lookup)
		if err != nil || got != want {
			t.Errorf("%q -> %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"$nope", "x $", "$a/x", "$a $b"} {
		if _, err := ExpandVariables(in, lookup); err == nil || !strings.Contains(err.Error(), "unknown variable") {
			t.Errorf("%q: err = %v", in, err)
		}
	}
	if got, err := ExpandVariables("pre$a", lookup); err != nil || got != "pre$a" {
		t.Errorf("pre$a -> %q, %v", got, err)
	}
}

func TestParseExtBool(t *testing.T) {
	for v, want := range map[string]bool{"yes": true, "YES": true, "Yes": true, "no": false, "NO": false} {
		if b, err := ParseExtBool(v); err != nil || b != want {
			t.Errorf("%q -> %v, %v", v, b, err)
		}
	}
	// lib-settings' get_bool knows only yes and no: the main
	// configuration's y and 1 are errors in an ext file.
	for _, v := range []string{"y", "1", "0", "n", "true", "", " yes"} {
		if _, err := ParseExtBool(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestParseExtUint(t *testing.T) {
	// sscanf("%i") as lib-settings' get_uint uses it.
	tests := map[string]int{
		"3": 3, "0": 0, "010": 8, "0x10": 16, "0X1f": 31, " 7": 7, "+5": 5, "-0": 0,
		"3 x": 3, "12abc": 12, "08": 0, "0x": 0, "0xg": 0, "2147483647": 1<<31 - 1,
	}
	for in, want := range tests {
		if got, err := ParseExtUint(in); err != nil || got != want {
			t.Errorf("%q -> %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "three", "-1", "x3", "2147483648", "99999999999999999999"} {
		if _, err := ParseExtUint(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestParseUint32(t *testing.T) {
	for in, want := range map[string]uint32{"0": 0, "42": 42, "4294967295": 1<<32 - 1} {
		if got, err := ParseUint32(in); err != nil || got != want {
			t.Errorf("%q -> %d, %v", in, got, err)
		}
	}
	// str_to_uint: digits only.
	for _, in := range []string{"", " 1", "1 ", "+1", "-1", "0x1", "4294967296", "1a"} {
		if _, err := ParseUint32(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("AUTHD_TEST_ENV", "val")
	tests := map[string]string{
		"$ENV:AUTHD_TEST_ENV":               "val",
		"a $ENV:AUTHD_TEST_ENV b":           "a val b",
		"a\t$ENV:AUTHD_TEST_ENV":            "a\tval",
		"a$ENV:AUTHD_TEST_ENV":              "a$ENV:AUTHD_TEST_ENV", // not after a blank
		"$ENV:AUTHD_TEST_UNSET_Y x":         " x",
		"$ENV:AUTHD_TEST_ENV\tx":            "", // the name runs to a space, not a tab
		"cost $5 and $ENV:AUTHD_TEST_ENV $": "cost $5 and val $",
		"no variables":                      "no variables",
	}
	for in, want := range tests {
		if got := ExpandEnv(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestUnquote(t *testing.T) {
	tests := map[string]string{
		`"x"`: "x", `'x'`: "x", `"`: "", `''`: "", `"a" "b"`: `a" "b`, `"a\"b"`: `a"b`,
		`"\n\t\\"`: `nt\`, `"x\"`: "x", `"x'`: `"x'`, `x`: "x", `"x`: `"x`, ``: ``,
	}
	for in, want := range tests {
		if got := Unquote(in); got != want {
			t.Errorf("Unquote(%q) = %q, want %q", in, got, want)
		}
	}
}
