package conffile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Version selects the configuration language. Only the lexical rules
// change with it; what a setting means is the caller's business.
type Version int

const (
	// Version23 is Dovecot 2.3's syntax, the default.
	Version23 Version = iota
	// Version24 adds Dovecot 2.4's lexical changes: every isspace()
	// character is a blank (2.3: space and tab only), a key may be quoted
	// (`"key" = value`), and `group @name label {` opens a group section.
	// Nothing of 2.4's meaning (named filters, $SET:, %{var | filter})
	// is implemented here.
	Version24
)

// Defaults for Options; they bound what a file can make the reader do.
// Dovecot has no such limits, but a real configuration is nowhere near
// them.
const (
	DefaultMaxLineLength   = 64 << 10 // a physical line, and a continued one
	DefaultMaxIncludeDepth = 20
	DefaultMaxFileSize     = 16 << 20
	// MaxSectionDepth bounds nesting; Dovecot's own configs nest at most 3
	// deep (service { unix_listener { } }, namespace { mailbox { } }).
	MaxSectionDepth = 32
	// maxBraceExpansion bounds `{a,b}` expansion in include patterns.
	maxBraceExpansion = 256
)

// Options tune the reader. The zero value (or nil) reads a Dovecot 2.3
// main configuration (config-parser.c's rules) from the real file system
// with the default bounds.
//
// Dovecot 2.3 has a second reader for the files its auth process opens
// itself (dovecot-sql.conf.ext, dovecot-ldap.conf.ext: lib-settings'
// settings_read_nosection). Where the two differ in a way real files
// notice, one field below selects the second reader's rule for that one
// point; ExtFile sets them all. Everywhere else both kinds of file are
// read alike (see the package documentation).
type Options struct {
	Version Version

	// ContinueAcrossComments: a blank or comment line inside a value
	// continued with '\' is skipped and the value goes on, as
	// lib-settings reads it (its loop `continue`s before the pending line
	// is touched). config-parser.c instead ends the pending line there and
	// drops it.
	ContinueAcrossComments bool
	// UnclosedSectionOK makes a section still open at the end of the
	// file a warning rather than an error: lib-settings does not check
	// (the rest of the file is silently inside the skipped section),
	// config-parser.c fails with "Missing '}'".
	UnclosedSectionOK bool
	// LiteralValues: `<file` and `$name` mean nothing, and `$ENV:NAME` in
	// an unquoted value is replaced by the environment variable when the
	// line is read (lib-settings' expand_environment_vars). Without it,
	// values are classified as ValueFile / ValueVariable for the caller
	// to resolve, as config-parser.c does.
	LiteralValues bool
	// ReverseGlobOrder reads the files an include pattern matches in
	// descending order. lib-settings pushes the sorted matches on its
	// input stack one by one and so reads the last one first;
	// config-parser.c pushes them backwards and reads them in order. When
	// two included files set the same key, the other file wins.
	ReverseGlobOrder bool

	// NoIncludes makes !include and !include_try errors: for text that
	// has no place on disk (tests, fuzzing, settings held in memory).
	NoIncludes bool

	MaxLineLength   int // longest line, physical or continued, in bytes
	MaxIncludeDepth int // how deep !include may nest
	MaxFileSize     int64

	// ReadFile and Glob replace the file system, for tests and fuzzing.
	// ReadFile must refuse anything but regular files.
	ReadFile func(path string) ([]byte, error)
	Glob     func(pattern string) ([]string, error)
}

// ExtFile returns the options for a file the auth process reads with
// lib-settings (dovecot-sql.conf.ext, dovecot-ldap.conf.ext).
func ExtFile() Options {
	return Options{
		ContinueAcrossComments: true,
		UnclosedSectionOK:      true,
		LiteralValues:          true,
		ReverseGlobOrder:       true,
	}
}

// Resolved returns a copy of the options with every default filled in,
// so that ReadFile and Glob can be called. o may be nil.
func (o *Options) Resolved() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.MaxLineLength <= 0 {
		r.MaxLineLength = DefaultMaxLineLength
	}
	if r.MaxIncludeDepth <= 0 {
		r.MaxIncludeDepth = DefaultMaxIncludeDepth
	}
	if r.MaxFileSize <= 0 {
		r.MaxFileSize = DefaultMaxFileSize
	}
	if r.ReadFile == nil {
		max := r.MaxFileSize
		r.ReadFile = func(path string) ([]byte, error) { return ReadRegularFile(path, max) }
	}
	if r.Glob == nil {
		r.Glob = filepath.Glob
	}
	return r
}

// ReadRegularFile reads a whole file, refusing devices and FIFOs (opening
// a FIFO would block, /dev/zero would never end) and files over max bytes.
func ReadRegularFile(path string, max int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", path, max)
	}
	return data, nil
}
