package conffile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Result is what Read and ReadFile found.
type Result struct {
	// Root is the top level of the file, a section without a key. It is
	// never nil: after errors it holds what could be read.
	Root *Node
	// Errors are every syntax problem found, not only the first, and
	// Warnings what loads but looks wrong; both in reading order (files in
	// the order they were first read, then by line).
	Errors, Warnings []*Error
	// Files lists the files read from disk in the order they were first
	// read: the main file (ReadFile only), then the included ones.
	Files []string

	fileNo map[string]int // reading order of every file, the main one too
}

// Sort orders problems, the reader's and a caller's own, as the reader
// orders its own: by the order in which files were first read (files it
// did not read last), then by line. It sorts l in place and returns it.
func (res *Result) Sort(l []*Error) []*Error { return sortByFile(l, res.fileNo) }

// ReadFile reads a file and everything it includes. The error is for the
// main file only (it cannot be read, wrapped with %w); every problem
// inside the files is in the Result.
func ReadFile(path string, opts *Options) (*Result, error) {
	o := opts.Resolved()
	data, err := o.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("can't read %s: %w", path, err)
	}
	r := newReader(o)
	r.noteFile(path)
	return r.run(path, data), nil
}

// Read reads data as a file called name. Includes and relative paths are
// resolved against the directory of name, or against the working
// directory when name has no directory part (as Dovecot does).
func Read(name string, data []byte, opts *Options) *Result {
	r := newReader(opts.Resolved())
	return r.run(name, data)
}

// frame is one open section.
type frame struct {
	node     *Node
	detached bool // a broken section header: children are dropped
}

type reader struct {
	opts  Options
	white func(byte) bool
	root  *Node
	stack []frame
	// detachedN counts detached frames on the stack, so that checking
	// for one stays O(1) however deep a broken section nests.
	detachedN int
	inc       []string // absolute paths of the files being read, outermost first
	// cont is a line continued with '\' and not yet complete; it is
	// shared by all files because Dovecot carries it from the end of an
	// included file into the including one.
	cont    strings.Builder
	contPos Pos
	// contTooLong drops the rest of a continued line that grew too long,
	// up to and including its last piece.
	contTooLong bool
	errs        []*Error
	warns       []*Error
	files       []string
	fileNo      map[string]int
}

func newReader(o Options) *reader {
	r := &reader{opts: o, white: isBlank23, root: &Node{Section: true}, fileNo: map[string]int{}}
	if o.Version >= Version24 {
		r.white = isSpace
	}
	return r
}

// isBlank23 is Dovecot 2.3's IS_WHITE.
func isBlank23(c byte) bool { return c == ' ' || c == '\t' }

// isSpace is C's isspace(), which Dovecot 2.4 uses instead.
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

func (r *reader) errorf(pos Pos, format string, args ...any) {
	r.errs = append(r.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) warnf(pos Pos, format string, args ...any) {
	r.warns = append(r.warns, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

func (r *reader) trimLeft(s string) string {
	i := 0
	for i < len(s) && r.white(s[i]) {
		i++
	}
	return s[i:]
}

func (r *reader) trimRight(s string) string {
	i := len(s)
	for i > 0 && r.white(s[i-1]) {
		i--
	}
	return s[:i]
}

func (r *reader) run(name string, data []byte) *Result {
	if _, ok := r.fileNo[name]; !ok {
		r.fileNo[name] = len(r.fileNo)
	}
	r.readData(name, data)
	if r.cont.Len() > 0 {
		// Both Dovecot readers drop it silently; say so.
		r.warnf(r.contPos, "line continued with '\\' at the end of the file is ignored (as Dovecot does)")
		r.cont.Reset()
	}
	r.contTooLong = false
	for i := len(r.stack) - 1; i >= 0; i-- {
		n := r.stack[i].node
		if r.opts.UnclosedSectionOK {
			r.warnf(n.Pos, "missing '}': section %s is not closed, everything after it is inside it (Dovecot accepts this in this file)", n.Name())
		} else {
			r.errorf(n.Pos, "missing '}': section %s is not closed", n.Name())
		}
	}
	r.stack, r.detachedN = nil, 0
	return &Result{
		Root:     r.root,
		Errors:   sortByFile(r.errs, r.fileNo),
		Warnings: sortByFile(r.warns, r.fileNo),
		Files:    r.files,
		fileNo:   r.fileNo,
	}
}

func (r *reader) noteFile(path string) {
	if _, ok := r.fileNo[path]; !ok {
		r.fileNo[path] = len(r.fileNo)
	}
	for _, f := range r.files {
		if f == path {
			return
		}
	}
	r.files = append(r.files, path)
}

// sortByFile orders problems as a reader meets them: by the order in which
// files were first read, then by line (stable, so that two problems of
// one line keep their order).
func sortByFile(l []*Error, fileNo map[string]int) []*Error {
	rank := func(e *Error) int {
		if n, ok := fileNo[e.Pos.File]; ok {
			return n
		}
		return len(fileNo)
	}
	sort.SliceStable(l, func(i, j int) bool {
		fi, fj := rank(l[i]), rank(l[j])
		if fi != fj {
			return fi < fj
		}
		return l[i].Pos.Line < l[j].Pos.Line
	})
	return l
}

// readData splits one file into physical lines. The section stack is
// shared by all files, as in both Dovecot readers: an included file
// continues the section it was included from, and may close it.
func (r *reader) readData(name string, data []byte) {
	r.inc = append(r.inc, absPath(name))
	defer func() { r.inc = r.inc[:len(r.inc)-1] }()
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		// Dovecot's line reader drops one CR before the LF.
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		r.physicalLine(Pos{File: name, Line: lineNo}, raw)
	}
	if r.cont.Len() > 0 && len(r.inc) > 1 {
		r.warnf(r.contPos, "line continued with '\\' at the end of an included file continues on the including file's next line (as Dovecot does)")
	}
}

// physicalLine handles one line of a file: it drops comments, joins lines
// continued with '\' and hands complete lines to logicalLine.
func (r *reader) physicalLine(pos Pos, raw []byte) {
	if len(raw) > r.opts.MaxLineLength {
		r.errorf(pos, "line is too long (%d bytes, at most %d)", len(raw), r.opts.MaxLineLength)
		r.cont.Reset()
		return
	}
	if bytes.IndexByte(raw, 0) >= 0 {
		// Dovecot reads C strings and would cut the line here.
		r.errorf(pos, "line contains a NUL byte")
		r.cont.Reset()
		return
	}
	line := r.trimLeft(string(raw))
	if line == "" || line[0] == '#' {
		if r.cont.Len() > 0 && !r.opts.ContinueAcrossComments {
			r.warnf(r.contPos, "line continued with '\\' is followed by an empty or comment line and is ignored (as Dovecot does)")
			r.cont.Reset()
		}
		if !r.opts.ContinueAcrossComments {
			r.contTooLong = false
		}
		return
	}
	line = r.trimRight(r.stripComment(line, pos))
	if strings.HasSuffix(line, `\`) {
		r.continued(pos, r.trimRight(line[:len(line)-1]))
		return
	}
	if r.contTooLong {
		r.contTooLong = false
		return
	}
	if r.cont.Len() > 0 {
		r.cont.WriteString(line)
		line, pos = r.cont.String(), r.contPos
		r.cont.Reset()
		if len(line) > r.opts.MaxLineLength {
			r.errorf(pos, "continued line is too long (at most %d bytes)", r.opts.MaxLineLength)
			return
		}
	}
	r.logicalLine(pos, line)
}

// continued adds one piece of a line continued with '\': the pieces are
// joined with one space; an empty piece adds nothing (config-parser.c;
// lib-settings would add a second space).
func (r *reader) continued(pos Pos, part string) {
	if part == "" || r.contTooLong {
		return
	}
	if r.cont.Len() == 0 {
		r.contPos = pos
	}
	r.cont.WriteString(part)
	r.cont.WriteByte(' ')
	if r.cont.Len() > r.opts.MaxLineLength {
		r.errorf(r.contPos, "continued line is too long (at most %d bytes)", r.opts.MaxLineLength)
		r.cont.Reset()
		r.contTooLong = true
	}
}

// stripComment cuts a line at the first '#' outside quotes. Inside quotes
// a backslash escapes the next byte; an unterminated quote ends the scan,
// so nothing after it is a comment (both Dovecot readers do this).
func (r *reader) stripComment(line string, pos Pos) string {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\'', '"':
			j := i + 1
			for ; j < len(line) && line[j] != c; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
			}
			if j >= len(line) {
				return line
			}
			i = j
		case '#':
			// Dovecot treats `a#b` as a comment too but warns, because
			// a value such as a password may contain '#'.
			if i > 0 && !r.white(line[i-1]) {
				r.warnf(pos, "ambiguous '#' character in line, treating it as a comment (add a space before it to silence this warning)")
			}
			return line[:i]
		}
	}
	return line
}

// ErrorText is err's message without Go's "open PATH:" wrapping, which
// repeats the path a message about a file already names.
func ErrorText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
