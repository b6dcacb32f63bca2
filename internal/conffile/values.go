package conffile

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// The value parsers follow Dovecot 2.3, so a value Dovecot accepts means
// the same here and one it rejects is rejected. The main configuration's
// values are read by settings-parser.c; the ext files' values by
// lib-settings' parse_setting_from_defs, which knows only strings,
// yes/no booleans and sscanf("%i") numbers (ParseExtBool, ParseExtUint).

// ParseBool reads a main-configuration boolean as settings-parser.c's
// get_bool does: yes, y and 1 are true and no is false, case-insensitively.
// "0", "n" and "true" are errors in Dovecot too.
func ParseBool(v string) (bool, error) {
	switch {
	case strings.EqualFold(v, "yes"), strings.EqualFold(v, "y"), v == "1":
		return true, nil
	case strings.EqualFold(v, "no"):
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean value %q (use yes or no)", v)
}

// ParseExtBool reads an ext-file boolean as lib-settings' get_bool does:
// only yes and no, case-insensitively ("y" and "1" are errors there).
func ParseExtBool(v string) (bool, error) {
	switch {
	case strings.EqualFold(v, "yes"):
		return true, nil
	case strings.EqualFold(v, "no"):
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (use yes or no)", v)
}

// ParseExtUint reads an ext-file number as lib-settings' get_uint does
// with sscanf("%i"): leading blanks, an optional sign, 0x for hex and a
// leading 0 for octal; whatever follows the digits is ignored ("3 x" is
// 3) and a negative number is an error. Dovecot stores the result in a C
// int and so wraps numbers above 2^31-1; those are an error here.
func ParseExtUint(v string) (int, error) {
	s := strings.TrimLeft(v, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	base := 10
	switch {
	case len(s) > 2 && s[0] == '0' && s[1]|0x20 == 'x' && isDigitIn(s[2], 16):
		base, s = 16, s[2:]
	case len(s) > 0 && s[0] == '0':
		base = 8
	}
	i := 0
	for i < len(s) && isDigitIn(s[i], base) {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid number %q", v)
	}
	n, err := strconv.ParseUint(s[:i], base, 31)
	if err != nil || neg && n != 0 {
		return 0, fmt.Errorf("invalid number %q", v)
	}
	return int(n), nil
}

func isDigitIn(c byte, base int) bool {
	switch {
	case c >= '0' && c <= '9':
		return int(c-'0') < base
	case base == 16:
		c |= 0x20
		return c >= 'a' && c <= 'f'
	}
	return false
}

// leadingUint parses the decimal digits at the start of s.
func leadingUint(s string) (n uint64, rest string, err error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, s, errors.New("not a number")
	}
	n, err = strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, s, errors.New("number is too large")
	}
	return n, s[i:], nil
}

// ParseUint32 is Dovecot's str_to_uint: plain decimal digits that fit in
// 32 bits.
func ParseUint32(v string) (uint32, error) {
	n, rest, err := leadingUint(v)
	if err != nil || rest != "" {
		return 0, fmt.Errorf("invalid number %q", v)
	}
	if n > math.MaxUint32 {
		return 0, fmt.Errorf("number %q is too large", v)
	}
	return uint32(n), nil
}

// ParseOctal reads a mode the way settings-parser.c's get_octal does: octal
// when it starts with 0, otherwise DECIMAL (so `mode = 666` is 01232, as
// doveconf shows).
func ParseOctal(v string) (uint32, error) {
	if !strings.HasPrefix(v, "0") {
		return ParseUint32(v)
	}
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid octal number %q", v)
	}
	return uint32(n), nil
}

// ParseSize reads a size as settings_get_size does: a number, optional
// spaces, then B, or K/M/G/T optionally followed by "i" and/or "B", in any
// case ("10M", "10 MiB", "512k", "1t").
func ParseSize(v string) (int64, error) {
	n, rest, err := leadingUint(v)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	mult, rest := sizeUnit(strings.TrimLeft(rest, " "))
	if rest != "" {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return int64(n * mult), nil
}

// sizeUnit reads the unit of a size and returns what is left after it.
func sizeUnit(s string) (mult uint64, rest string) {
	if s == "" {
		return 1, s
	}
	switch s[0] | 0x20 {
	case 'b':
		return 1, s[1:]
	case 'k':
		mult = 1 << 10
	case 'm':
		mult = 1 << 20
	case 'g':
		mult = 1 << 30
	case 't':
		mult = 1 << 40
	default:
		return 1, s
	}
	s = s[1:]
	if s != "" && s[0]|0x20 == 'i' {
		s = s[1:]
	}
	if s != "" && s[0]|0x20 == 'b' {
		s = s[1:]
	}
	return mult, s
}

// isAbbrev reports whether s is a case-insensitive prefix of word;
// Dovecot accepts any abbreviation of a unit name ("s", "sec", "secs").
func isAbbrev(s, word string) bool {
	return len(s) <= len(word) && strings.EqualFold(s, word[:len(s)])
}

// ParseDuration reads a time interval as settings_get_time does: a
// number, optional spaces and a unit that is any abbreviation of secs,
// seconds, mins, minutes, hours, days, weeks, or msecs/milliseconds ("m" is
// minutes). A bare number other than 0 is an error ("missing units"), as
// in Dovecot 2.3; there are no fractions and no Go syntax ("1.5s"). With
// msOK false (Dovecot's second-granularity settings) milliseconds are
// accepted only when they make whole seconds. Like Dovecot, the result
// must fit in 32 bits of the base unit.
func ParseDuration(v string, msOK bool) (time.Duration, error) {
	n, rest, err := leadingUint(v)
	if err != nil {
		return 0, fmt.Errorf("invalid time interval %q", v)
	}
	rest = strings.TrimLeft(rest, " ")
	if rest == "" {
		if n != 0 {
			return 0, fmt.Errorf("time interval %q is missing units (add e.g. 's' for seconds)", v)
		}
		return 0, nil
	}
	unit := timeUnit(rest)
	switch {
	case unit == 0:
		return 0, fmt.Errorf("invalid time interval %q", v)
	case unit == time.Millisecond && !msOK && n%1000 != 0:
		return 0, fmt.Errorf("milliseconds are not supported for this setting: %q", v)
	}
	base := time.Second
	if msOK {
		base = time.Millisecond
	}
	if unit >= base {
		if n > math.MaxUint32/uint64(unit/base) {
			return 0, fmt.Errorf("time interval %q is too large", v)
		}
	} else if n/uint64(base/unit) > math.MaxUint32 {
		return 0, fmt.Errorf("time interval %q is too large", v)
	}
	return time.Duration(n) * unit, nil
}

// timeUnit is the length of the unit named by s, or 0.
func timeUnit(s string) time.Duration {
	switch {
	case isAbbrev(s, "secs") || isAbbrev(s, "seconds"):
		return time.Second
	case isAbbrev(s, "mins") || isAbbrev(s, "minutes"):
		return time.Minute
	case isAbbrev(s, "msecs") || isAbbrev(s, "mseconds") ||
		isAbbrev(s, "millisecs") || isAbbrev(s, "milliseconds"):
		return time.Millisecond
	case isAbbrev(s, "hours"):
		return time.Hour
	case isAbbrev(s, "days"):
		return 24 * time.Hour
	case isAbbrev(s, "weeks"):
		return 7 * 24 * time.Hour
	}
	return 0
}

// FormatDuration writes d the way doveconf prints times ("2 secs",
// "1 hours"), so that a dump reads like Dovecot's and parses back.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d%time.Second != 0 {
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{7 * 24 * time.Hour, "weeks"}, {24 * time.Hour, "days"}, {time.Hour, "hours"}, {time.Minute, "mins"}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d %s", d/u.d, u.name)
		}
	}
	return fmt.Sprintf("%d secs", d/time.Second)
}

// FormatSize writes n the way doveconf prints sizes ("10 M", "2 k").
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 40, "T"}, {1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "k"}} {
		if n%u.n == 0 {
			return fmt.Sprintf("%d %s", n/u.n, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// ExpandEnv replaces `$ENV:NAME` in an unquoted ext-file value as
// lib-settings' expand_environment_vars does: only at the start of the
// value or after a blank, NAME running to the next space; an unset
// variable is empty, and any other '$' is kept.
func ExpandEnv(v string) string {
	if !strings.Contains(v, "$ENV:") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		if strings.HasPrefix(v[i:], "$ENV:") && (i == 0 || isBlank23(v[i-1])) {
			end := strings.IndexByte(v[i:], ' ')
			if end < 0 {
				end = len(v)
			} else {
				end += i
			}
			b.WriteString(os.Getenv(v[i+5 : end]))
			i = end
			continue
		}
		b.WriteByte(v[i])
		i++
	}
	return b.String()
}

// ExpandVariables resolves a main-configuration ValueVariable as Dovecot
// 2.3's config-parser.c does: the value is cut into words at spaces, a word
// that starts with '$' is a reference to the whole-word setting name
// (`$base_dir/x` refers to "base_dir/x" and is unknown), `$ENV:NAME` reads
// the environment, and the words are joined with single spaces (runs of
// blanks collapse). lookup gives a setting's current value.
func ExpandVariables(value string, lookup func(name string) (string, bool)) (string, error) {
	var b strings.Builder
	for start := 0; ; {
		end := strings.IndexByte(value[start:], ' ')
		var word string
		if end < 0 {
			word = value[start:]
		} else {
			end += start
			word = value[start:end]
		}
		if err := expandWord(&b, word, lookup); err != nil {
			return "", err
		}
		if end < 0 {
			return b.String(), nil
		}
		b.WriteByte(' ')
		start = end
		for start < len(value) && isBlank23(value[start]) {
			start++
		}
	}
}

func expandWord(b *strings.Builder, word string, lookup func(name string) (string, bool)) error {
	name, ok := strings.CutPrefix(word, "$")
	if !ok {
		b.WriteString(word)
		return nil
	}
	if env, ok := strings.CutPrefix(name, "ENV:"); ok {
		b.WriteString(os.Getenv(env))
		return nil
	}
	v, ok := lookup(name)
	if !ok {
		return fmt.Errorf("unknown variable: $%s", name)
	}
	b.WriteString(v)
	return nil
}
