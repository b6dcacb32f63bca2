package dovecot

import (
	"bytes"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/tabescape"
)

// Micro-benchmarks of the wire codec on the lines authd handles most: an
// AUTH PLAIN as imap-login sends it (docs/testing.md §4.4's capture) and the
// OK that answers it. Run with
//
//	go test -run '^$' -bench 'Codec' -benchmem ./internal/dovecot

// benchAuthLine is a typical AUTH from a login process: nothing needs
// unescaping, as in practice.
const benchAuthLine = "AUTH\t1\tPLAIN\tservice=imap\tsecured\tsession=Hr4w0Npgds9/AAAB\tlip=127.0.0.1\trip=127.0.0.1\tlport=143\trport=53110\tresp=AHVzZXIwMDAwMUBleGFtcGxlLmNvbQBwdzAwMDAx"

func BenchmarkCodecSplitAuthLine(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		args := SplitLine(benchAuthLine)
		if len(args) != 11 {
			b.Fatal(len(args))
		}
	}
}

// An AUTH whose forward_fields carry escaped TABs: the unescaping path.
func BenchmarkCodecSplitEscapedLine(b *testing.B) {
	line := benchAuthLine[:strings.LastIndexByte(benchAuthLine, '\t')] +
		"\tforward_fields=a=1\x01tb=2\x01tc=x\x011y\tresp=AHVzZXIwMDAwMUBleGFtcGxlLmNvbQBwdzAwMDAx"
	b.ReportAllocs()
	for b.Loop() {
		if args := SplitLine(line); len(args) != 12 {
			b.Fatal(len(args))
		}
	}
}

// The OK reply as finishOK renders it, into a reused buffer.
func BenchmarkCodecAppendOKLine(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = append(buf[:0], "OK\t"...)
		buf = append(buf, "12345"...)
		buf = append(buf, "\tuser="...)
		buf = tabescape.Append(buf, "user00001@example.com")
		buf = append(buf, '\n')
	}
}

func BenchmarkCodecEscapeNeeded(b *testing.B) {
	v := "reason=Account\tdisabled\nsince 2024\x01"
	b.ReportAllocs()
	for b.Loop() {
		if tabescape.Escape(v) == v {
			b.Fatal("not escaped")
		}
	}
}

// ReadLine over a stream of AUTH lines, as the connection's read loop
// sees them.
func BenchmarkCodecReadLine(b *testing.B) {
	stream := bytes.Repeat([]byte(benchAuthLine+"\n"), 1000)
	r := bytes.NewReader(stream)
	lr := NewLineReader(r, clientMaxLine)
	b.SetBytes(int64(len(benchAuthLine) + 1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := lr.ReadLine(); err != nil {
			r.Reset(stream)
			lr = NewLineReader(r, clientMaxLine)
		}
	}
}

func BenchmarkCodecDecodeResp(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeBase64("AHVzZXIwMDAwMUBleGFtcGxlLmNvbQBwdzAwMDAx"); err != nil {
			b.Fatal(err)
		}
	}
}
