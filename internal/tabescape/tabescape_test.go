package tabescape

import (
	"strings"
	"testing"
)

func TestEscapeRoundTrip(t *testing.T) {
	cases := map[string]string{
		"plain":            "plain",
		"a\tb":             "a\x01tb",
		"a\x01b":           "a\x011b",
		"nul\x00":          "nul\x010",
		"cr\rlf\n":         "cr\x01rlf\x01n",
		`back\slash`:       `back\slash`, // backslash is not special (docs/protocol.md §0)
		"":                 "",
		"\t\t\x01\x00":     "\x01t\x01t\x011\x010",
		"a\x00\x01\t\r\nb": "a\x010\x011\x01t\x01r\x01nb",
	}
	for raw, esc := range cases {
		if got := Escape(raw); got != esc {
			t.Errorf("Escape(%q) = %q, want %q", raw, got, esc)
		}
		if got := string(Append([]byte("x="), raw)); got != "x="+esc {
			t.Errorf("Append(x=, %q) = %q, want %q", raw, got, "x="+esc)
		}
		if got := Unescape(esc); got != raw {
			t.Errorf("Unescape(%q) = %q, want %q", esc, got, raw)
		}
	}
}

func TestUnescapeOddInput(t *testing.T) {
	cases := map[string]string{
		"a\x01xb\x01": "axb",   // unknown byte after 0x01 yields it; a trailing 0x01 is dropped
		"\x01":        "",      // a lone 0x01 is nothing
		"ab\x01":      "ab",    // a lone 0x01 at the very end is dropped
		"\x01\x01":    "\x01",  // 0x01 escapes an unescaped 0x01 as any other byte
		"\x01l":       "l",     // Dovecot's old docs' LF letter is not special
		"\x01T\x01N":  "TN",    // the letters are case-sensitive
		"\x01\t":      "\t",    // a raw TAB after 0x01 is kept
		"x\x01n\x01":  "x\n",   // an escape, then a trailing 0x01
		"\x011\x01":   "\x01",  // an escaped 0x01 followed by a lone one
		"\x01\x011":   "\x011", // 0x01 0x01 yields 0x01, then '1' is plain
	}
	for in, want := range cases {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeLeavesNoControlByte(t *testing.T) {
	var all strings.Builder
	for c := 0; c < 256; c++ {
		all.WriteByte(byte(c))
	}
	esc := Escape(all.String())
	if strings.ContainsAny(esc, "\x00\t\r\n") {
		t.Errorf("escaped value still has NUL, TAB, CR or LF: %q", esc)
	}
	if got := Unescape(esc); got != all.String() {
		t.Errorf("round trip of all bytes: got %q", got)
	}
}
