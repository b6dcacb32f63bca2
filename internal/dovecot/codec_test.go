package dovecot

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/tabescape"
)

func TestSplitLine(t *testing.T) {
	// Every field is unescaped (package tabescape's tests cover the table).
	got := SplitLine("OK\t1\tuser=a\x01tb\t\treason=x\x01")
	want := []string{"OK", "1", "user=a\tb", "", "reason=x"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}

func TestLineReader(t *testing.T) {
	lr := NewLineReader(strings.NewReader("one\r\ntwo\n"+strings.Repeat("x", 20)+"\nlast"), 16)
	for _, want := range []string{"one", "two"} {
		got, err := lr.ReadLine()
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	if _, err := lr.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("long line: got %v", err)
	}
}

func TestLineReaderExactLimit(t *testing.T) {
	line := strings.Repeat("y", 15) + "\n" // 16 bytes with LF
	lr := NewLineReader(strings.NewReader(line), 16)
	if got, err := lr.ReadLine(); err != nil || got != strings.Repeat("y", 15) {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := lr.ReadLine(); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestDecodeBase64Strict(t *testing.T) {
	if _, err := DecodeBase64("AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA"); err == nil {
		t.Error("missing padding accepted")
	}
	if b, err := DecodeBase64(""); err != nil || len(b) != 0 {
		t.Errorf("empty: %v %v", b, err)
	}
	if _, err := DecodeBase64("AA==\n"); err == nil {
		t.Error("line break accepted")
	}
	if b, err := DecodeBase64("AGE="); err != nil || !bytes.Equal(b, []byte{0, 'a'}) {
		t.Errorf("got %v %v", b, err)
	}
}

func TestParseID(t *testing.T) {
	for s, want := range map[string]bool{"1": true, "4294967295": true, "4294967296": false, "x": false, "": false, "-1": false, "+1": false, "01": true} {
		if _, ok := parseID(s); ok != want {
			t.Errorf("parseID(%q) ok=%v, want %v", s, ok, want)
		}
	}
}

// FuzzLineCodec checks that splitting, unescaping and re-escaping any
// input never panics and that escaping round-trips.
func FuzzLineCodec(f *testing.F) {
	for _, s := range []string{"AUTH\t1\tPLAIN\tservice=imap\tresp=AA==", "a\x01tb\x01", "\x01\x01\x01", "VERSION\t1\t2\r", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, field := range SplitLine(s) {
			if tabescape.Unescape(tabescape.Escape(field)) != field {
				t.Fatalf("round trip failed for %q", field)
			}
			if strings.ContainsAny(tabescape.Escape(field), "\t\n\r\x00") {
				t.Fatalf("escaped value still has a control byte: %q", field)
			}
		}
		lr := NewLineReader(strings.NewReader(s), 64)
		for i := 0; i < 100; i++ {
			if _, err := lr.ReadLine(); err != nil {
				break
			}
		}
		_, _ = DecodeBase64(s)
		_, _ = parseID(s)
	})
}
