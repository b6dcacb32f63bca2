// Package dovecot speaks Dovecot's auth protocols on unix sockets: the
// client protocol (auth-client and login sockets, used by Postfix, doveadm
// auth test and Dovecot's login processes) and the master protocol
// (auth-master and auth-userdb sockets, used by mail processes, LDA/LMTP and
// doveadm). The wire contract is docs/protocol.md; this package
// knows nothing of backends and asks the engine for every decision.
package dovecot

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/authd-project/authd/internal/tabescape"
)

// SplitLine splits one protocol line (without its LF) at TABs and unescapes
// every field (package tabescape writes and reads values, docs/protocol.md §0).
func SplitLine(line string) []string {
	args := strings.Split(line, "\t")
	for i, a := range args {
		args[i] = tabescape.Unescape(a)
	}
	return args
}

// ErrLineTooLong is returned by LineReader when a line exceeds its limit;
// Dovecot closes such a connection.
var ErrLineTooLong = errors.New("dovecot: input line too long")

// LineReader reads LF-terminated lines with a hard length limit, so a
// client cannot make the server buffer unbounded input.
type LineReader struct {
	r   *bufio.Reader
	max int
}

// NewLineReader returns a reader whose lines, LF included, may be at most
// max bytes long.
func NewLineReader(r io.Reader, max int) *LineReader {
	size := 4096
	if max < size {
		size = max
	}
	return &LineReader{r: bufio.NewReaderSize(r, size), max: max}
}

// HasLine reports whether a whole line is buffered already, so that
// ReadLine will not wait for input.
func (lr *LineReader) HasLine() bool {
	n := lr.r.Buffered()
	if n == 0 {
		return false
	}
	b, _ := lr.r.Peek(n) // n bytes are buffered: Peek does not read
	return bytes.IndexByte(b, '\n') >= 0
}

// ReadLine returns the next line without LF and without a trailing CR
// (Dovecot's reader tolerates CRLF on input).
func (lr *LineReader) ReadLine() (string, error) {
	var buf []byte
	for {
		frag, err := lr.r.ReadSlice('\n')
		if len(buf)+len(frag) > lr.max {
			return "", ErrLineTooLong
		}
		if err == nil {
			if buf == nil {
				return trimEOL(string(frag)), nil
			}
			buf = append(buf, frag...)
			return trimEOL(string(buf)), nil
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			buf = append(buf, frag...)
			continue
		}
		if err == io.EOF && len(buf)+len(frag) > 0 {
			// An unterminated last line is dropped, as Dovecot only acts on
			// complete lines.
			return "", io.EOF
		}
		return "", err
	}
}

func trimEOL(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

// DecodeBase64 decodes standard base64 strictly: padding is required and
// nothing but the alphabet is allowed, as Dovecot's decoder is
// (docs/protocol.md §0).
func DecodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("invalid base64: line break")
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// EncodeBase64 is the standard padded encoding.
func EncodeBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// parseID parses a request id: a decimal uint32 without sign or spaces.
func parseID(s string) (uint32, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 0xffffffff {
		return 0, false
	}
	return uint32(n), true
}
