// Package textlines splits a file read into memory into lines, for the
// line-oriented backends (passwd-file, shadow). A line over the limit is
// reported and skipped, and reading goes on: one bad line must not hide
// the users after it (bufio.Scanner would stop there).
package textlines

import (
	"bytes"
	"strings"
)

// Each calls fn with every line of data and its number (from 1), without
// the "\n" and a trailing "\r". A line longer than max bytes is not
// passed to fn; tooLong gets its number instead.
func Each(data []byte, max int, fn func(no int, line string), tooLong func(no int)) {
	for no := 1; len(data) > 0; no++ {
		raw := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(raw) > max {
			tooLong(no)
			continue
		}
		fn(no, strings.TrimSuffix(string(raw), "\r"))
	}
}
