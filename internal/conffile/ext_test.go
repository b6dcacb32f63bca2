package conffile

import (
	"path/filepath"
	"strings"
	"testing"
)

// These tests pin how ext files (dovecot-sql.conf.ext,
// dovecot-ldap.conf.ext) are read. Dovecot 2.3's auth process reads them
// with lib-settings' settings_read_nosection (src/lib-settings/settings.c);
// each case says what that code does. The main configuration's side of
// every decision is checked against the real doveconf in doveconf_test.go.

func extOpts() *Options {
	o := ExtFile()
	return &o
}

func TestExtFileSyntax(t *testing.T) {
	t.Setenv("AUTHD_TEST_EXT", "from-env")
	tests := []struct {
		name, in, want string
		errs, warns    []string
	}{
		// str_unescape takes the byte after a backslash literally: there
		// are no control escapes.
		{name: "backslash letters", in: `a = "x\ny\tz\\"`, want: "a=\"xnytz\\\\\"\n"},
		{name: "single quotes", in: `a = 'it\'s'`, want: "a=\"it's\"\n"},
		// A lone quote is a quoted empty value (line[len-1] is the
		// opening quote itself).
		{name: "lone quote", in: `a = "`, want: "a=\"\"\n"},
		// The comment loop's `continue` leaves the pending continued line
		// alone, so blank and comment lines inside it are skipped.
		{name: "continuation over comments", in: "a = x \\\n# c\n\n  # d\n  y\nb = c\n", want: "a=\"x y\"\nb=\"c\"\n"},
		// At the end of the main file the pending line is never used.
		{name: "backslash at end of file", in: "a = x\nb = y \\\n", want: "a=\"x\"\n",
			warns: []string{"t.conf:2: line continued with '\\' at the end of the file is ignored"}},
		// No callback for sections: their contents are skipped, and an
		// unclosed one is not checked (the rest of the file is in it).
		{name: "missing close", in: "a = x\ns {\n b = y\n", want: "a=\"x\"\ns {\n b=\"y\"\n}\n",
			warns: []string{"t.conf:2: missing '}'"}},
		// expand_environment_vars runs on unquoted values only; '<' and a
		// '$' that is not $ENV: mean nothing.
		{name: "env unquoted", in: "a = $ENV:AUTHD_TEST_EXT x\n", want: "a=\"from-env x\"\n"},
		{name: "env quoted", in: "a = \"$ENV:AUTHD_TEST_EXT\"\n", want: "a=\"$ENV:AUTHD_TEST_EXT\"\n"},
		{name: "no file values", in: "a = </etc/passwd\n", want: "a=\"</etc/passwd\"\n"},
		{name: "no variables", in: "a = $b c\n", want: "a=\"$b c\"\n"},
		// The same "pretty kludgy" comment loop as config-parser.c,
		// including its warning.
		{name: "ambiguous hash", in: "a = x#y\n", want: "a=\"x\"\n",
			warns: []string{"t.conf:1: ambiguous '#' character"}},
		{name: "hash in quotes", in: "a = 'x # y' # z\n", want: "a=\"x # y\"\n"},
		// `name{`: the key runs to a blank or '=', so it is "name{" and
		// the line has no '=': "Expecting '='". (The broken header still
		// pairs with its '}', so that is not a second error.)
		{name: "brace glued to name", in: "s{\n}\na = b\n", want: "a=\"b\"\n",
			errs: []string{"t.conf:1: expecting '=' or '{' after \"s{\""}},
		// A second word before '{' is an error in lib-settings too.
		{name: "two section names", in: "s a b {\n}\n", want: "",
			errs: []string{"t.conf:1: expecting '{'"}},
		{name: "setting without equals", in: "connect host=a\n", want: "",
			errs: []string{"t.conf:1: expecting '=' or '{' after \"connect\""}},
		{name: "unexpected close", in: "}\n", want: "", errs: []string{"t.conf:1: unexpected '}'"}},
		// i_stream_read_next_line drops one CR before the LF.
		{name: "CRLF", in: "a = b\r\nc = d\r\r\n", want: "a=\"b\"\nc=\"d\\r\"\n"},
		// A line that is only '\' adds nothing (lib-settings would add a
		// second space; with leading blanks it reads before its buffer).
		{name: "lone backslash", in: "a = x \\\n\\\ny\n", want: "a=\"x y\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Read("t.conf", []byte(tt.in), extOpts())
			if got := res.Root.String(); got != tt.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tt.want)
			}
			checkErrs(t, res.Errors, tt.errs)
			checkErrs(t, res.Warnings, tt.warns)
		})
	}
}

// TestMainVersusExt shows the points where an Options field switches to
// lib-settings' rule, on the same text.
func TestMainVersusExt(t *testing.T) {
	tests := []struct {
		name, in          string
		main, ext         string
		mainErrs, extErrs int
	}{
		{name: "comment inside continuation", in: "a = x \\\n# c\ny = 1\n",
			main: "y=\"1\"\n", ext: "a=\"x y = 1\"\n"},
		{name: "missing close", in: "s {\n", main: "s {\n}\n", ext: "s {\n}\n", mainErrs: 1},
		{name: "file value", in: "a = <x\n", main: "a=<\"x\"\n", ext: "a=\"<x\"\n"},
		{name: "variable", in: "a = $b\n", main: "a=$\"$b\"\n", ext: "a=\"$b\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Read("t.conf", []byte(tt.in), nil)
			e := Read("t.conf", []byte(tt.in), extOpts())
			if got := m.Root.String(); got != tt.main || len(m.Errors) != tt.mainErrs {
				t.Errorf("main: %q %v, want %q with %d errors", got, m.Errors, tt.main, tt.mainErrs)
			}
			if got := e.Root.String(); got != tt.ext || len(e.Errors) != tt.extErrs {
				t.Errorf("ext: %q %v, want %q with %d errors", got, e.Errors, tt.ext, tt.extErrs)
			}
		})
	}
}

func TestExtFileIncludes(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		// settings_include pushes every glob match on the input stack in
		// sorted order, so the last match is read first.
		"glob.conf": "!include inc/*.ext\n",
		"inc/a.ext": "k = a\n",
		"inc/b.ext": "k = b\n",
		// !include is handled before the section check, so it is
		// followed inside a skipped section; the section count is shared
		// by all files, so the included '}' closes it.
		"sect.conf":  "s {\n!include close.ext\nafter = 1\n",
		"close.ext":  "inner = 1\n}\n",
		"loop.conf":  "!include loop.conf\n",
		"try.conf":   "!include_try /dev/null\n!include_try nothing*.ext\nk = v\n",
		"carry.conf": "!include carry.ext\nnext = 2\n",
		// The pending line survives the end of the included file
		// (full_line is not reset when the input stack is popped).
		"carry.ext": "k = one \\\n",
	})
	read := func(name string) *Result {
		return mustReadFile(t, filepath.Join(dir, name), extOpts())
	}
	strip := func(s string) string { return strings.ReplaceAll(s, dir+"/", "") }

	res := read("glob.conf")
	if got := strip(res.Root.String()); got != "!include inc/b.ext\nk=\"b\"\n!include inc/a.ext\nk=\"a\"\n" {
		t.Errorf("glob order:\n%s", got)
	}
	res = read("sect.conf")
	checkErrs(t, res.Errors, nil)
	if got := strip(res.Root.String()); got != "s {\n !include close.ext\n inner=\"1\"\n}\nafter=\"1\"\n" {
		t.Errorf("include inside a section:\n%s", got)
	}
	res = read("loop.conf")
	checkErrs(t, res.Errors, []string{"loop.conf:1: !include " + dir + "/loop.conf: recursive include"})
	res = read("try.conf")
	checkErrs(t, res.Errors, nil)
	if got := res.Root.String(); got != "k=\"v\"\n" {
		t.Errorf("include_try: %q", got)
	}
	res = read("carry.conf")
	if got := strip(res.Root.String()); got != "!include carry.ext\nk=\"one next = 2\"\n" {
		t.Errorf("continuation at the end of an included file:\n%s", got)
	}
	checkErrs(t, res.Warnings, []string{"carry.ext:1: line continued with '\\' at the end of an included file continues"})
}
