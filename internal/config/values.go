package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Value syntax follows Dovecot 2.3's settings parser (lib-settings), so a
// value Dovecot accepts means the same here and one it rejects is rejected.

// parseBool accepts what Dovecot accepts: yes, y and 1 for true and no for
// false, case-insensitively. "0", "n" and "true" are errors in Dovecot too.
func parseBool(v string) (bool, error) {
	switch {
	case strings.EqualFold(v, "yes"), strings.EqualFold(v, "y"), v == "1":
		return true, nil
	case strings.EqualFold(v, "no"):
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean value %q (use yes or no)", v)
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

// parseUint32 is Dovecot's str_to_uint: plain decimal digits that fit in
// 32 bits.
func parseUint32(v string) (uint32, error) {
	n, rest, err := leadingUint(v)
	if err != nil || rest != "" {
		return 0, fmt.Errorf("invalid number %q", v)
	}
	if n > math.MaxUint32 {
		return 0, fmt.Errorf("number %q is too large", v)
	}
	return uint32(n), nil
}

// parseOctal reads a mode the way Dovecot does: octal when it starts with
// 0, otherwise DECIMAL (so `mode = 666` is 01232, as doveconf shows).
func parseOctal(v string) (uint32, error) {
	if !strings.HasPrefix(v, "0") {
		return parseUint32(v)
	}
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid octal number %q", v)
	}
	return uint32(n), nil
}

// Size units as Dovecot's settings_get_size reads them: a number, optional
// spaces, then B, or K/M/G/T optionally followed by "i" and/or "B", in any
// case ("10M", "10 MiB", "512k", "1t").
func parseSize(v string) (int64, error) {
	n, rest, err := leadingUint(v)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	rest = strings.TrimLeft(rest, " ")
	mult := uint64(1)
	if rest != "" {
		switch rest[0] | 0x20 {
		case 'b':
			rest = rest[1:]
		case 'k':
			mult, rest = 1<<10, rest[1:]
		case 'm':
			mult, rest = 1<<20, rest[1:]
		case 'g':
			mult, rest = 1<<30, rest[1:]
		case 't':
			mult, rest = 1<<40, rest[1:]
		}
		if mult > 1 {
			if rest != "" && rest[0]|0x20 == 'i' {
				rest = rest[1:]
			}
			if rest != "" && rest[0]|0x20 == 'b' {
				rest = rest[1:]
			}
		}
	}
	if rest != "" {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return int64(n * mult), nil
}

// isAbbrev reports whether s is a case-insensitive prefix of word;
// Dovecot accepts any abbreviation of a unit name ("s", "sec", "secs").
func isAbbrev(s, word string) bool {
	return len(s) <= len(word) && strings.EqualFold(s, word[:len(s)])
}

// parseDuration reads a time interval as Dovecot's settings_get_time does:
// a number, optional spaces and a unit that is any abbreviation of secs,
// seconds, mins, minutes, hours, days, weeks, or msecs/milliseconds. A bare
// number other than 0 is an error ("missing units"), as in Dovecot 2.3.
// With msOK false (Dovecot's second-granularity settings) milliseconds are
// accepted only when they make whole seconds. Like Dovecot, the result must
// fit in 32 bits of the base unit.
func parseDuration(v string, msOK bool) (time.Duration, error) {
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
	var unit time.Duration
	switch {
	case isAbbrev(rest, "secs") || isAbbrev(rest, "seconds"):
		unit = time.Second
	case isAbbrev(rest, "mins") || isAbbrev(rest, "minutes"):
		unit = time.Minute
	case isAbbrev(rest, "msecs") || isAbbrev(rest, "mseconds") ||
		isAbbrev(rest, "millisecs") || isAbbrev(rest, "milliseconds"):
		if !msOK && n%1000 != 0 {
			return 0, fmt.Errorf("milliseconds are not supported for this setting: %q", v)
		}
		unit = time.Millisecond
	case isAbbrev(rest, "hours"):
		unit = time.Hour
	case isAbbrev(rest, "days"):
		unit = 24 * time.Hour
	case isAbbrev(rest, "weeks"):
		unit = 7 * 24 * time.Hour
	default:
		return 0, fmt.Errorf("invalid time interval %q", v)
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

// formatDuration writes d the way doveconf prints times ("2 secs",
// "1 hours"), so Dump output reads like Dovecot's.
func formatDuration(d time.Duration) string {
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

// formatSize writes n the way doveconf prints sizes ("10 M", "2 k").
func formatSize(n int64) string {
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

// expandVariables replaces `$name` words as Dovecot 2.3 does: the value is
// cut into words at spaces, a word that starts with '$' is a reference to
// the whole-word setting name (`$base_dir/x` refers to "base_dir/x" and is
// unknown), `$ENV:NAME` reads the environment, and the words are joined with
// single spaces (runs of whitespace collapse). A reference to the setting
// being assigned (`x = $x more`) gives its previous value.
func expandVariables(value string, lookup func(name string) (string, bool)) (string, error) {
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
		if name, ok := strings.CutPrefix(word, "$"); ok {
			if env, ok := strings.CutPrefix(name, "ENV:"); ok {
				b.WriteString(os.Getenv(env))
			} else if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				return "", fmt.Errorf("unknown variable: $%s", name)
			}
		} else {
			b.WriteString(word)
		}
		if end < 0 {
			return b.String(), nil
		}
		b.WriteByte(' ')
		start = end
		for start < len(value) && isWhite(value[start]) {
			start++
		}
	}
}

// splitList splits on spaces, tabs and commas and drops empty items.
func splitList(v string, seps string) []string {
	out := strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(seps, r) })
	if len(out) == 0 {
		return nil
	}
	return out
}
