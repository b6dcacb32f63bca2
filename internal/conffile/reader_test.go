package conffile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadSyntax(t *testing.T) {
	tests := []struct {
		name, in, want string
		errs           []string // substrings, in order
	}{
		{name: "key value", in: "a = b\nc=d\n  e  =   f g  \n", want: "a=\"b\"\nc=\"d\"\ne=\"f g\"\n"},
		{name: "empty value", in: "a =\nb = \"\"\n", want: "a=\"\"\nb=\"\"\n"},
		{name: "value with =", in: "a = x=y==\n", want: "a=\"x=y==\"\n"},
		{name: "CRLF", in: "a = b\r\nc = d\r\n", want: "a=\"b\"\nc=\"d\"\n"},
		{name: "double quotes", in: `a = "x \" \\ y"`, want: "a=\"x \\\" \\\\ y\"\n"},
		{name: "single quotes", in: `a = 'it\'s'`, want: "a=\"it's\"\n"},
		// Dovecot strips only the outermost pair: "a" "b" -> a" "b.
		{name: "two quoted words", in: `a = "x" "y"`, want: "a=\"x\\\" \\\"y\"\n"},
		{name: "backslash letters", in: `a = "x\ny\t"`, want: "a=\"xnyt\"\n"},
		{name: "unterminated quote kept", in: `a = "abc`, want: "a=\"\\\"abc\"\n"},
		{name: "lone quote", in: `a = "`, want: "a=\"\"\n"},
		{name: "comment lines", in: "# x\n   # y\n\na = b # c\n", want: "a=\"b\"\n"},
		{name: "hash inside quotes", in: `a = "x # y" # z`, want: "a=\"x # y\"\n"},
		{name: "hash inside single quotes", in: `a = 'x#y'`, want: "a=\"x#y\"\n"},
		{name: "ambiguous hash is a comment", in: "a = x#y\n", want: "a=\"x\"\n"},
		{name: "hash after unterminated quote", in: "a = \"x # y\n", want: "a=\"\\\"x # y\"\n"},
		{name: "section", in: "passdb {\n driver = pam\n}\n", want: "passdb {\n driver=\"pam\"\n}\n"},
		{name: "section label", in: "service auth {\n unix_listener auth-userdb {\n  mode = 0666\n }\n}\n",
			want: "service \"auth\" {\n unix_listener \"auth-userdb\" {\n  mode=\"0666\"\n }\n}\n"},
		{name: "quoted label", in: "mailbox \"Sent Messages\" {\n}\n", want: "mailbox \"Sent Messages\" {\n}\n"},
		{name: "filter label with bang", in: "protocol !imap {\n}\n", want: "protocol \"!imap\" {\n}\n"},
		{name: "closing brace with comment", in: "a {\n} # end\n", want: "a {\n}\n"},
		{name: "continuation", in: "a = x \\\n   y\\\nz   \\\n  w\n", want: "a=\"x y z w\"\n"},
		{name: "continued section header", in: "passdb \\\n{\n}\n", want: "passdb {\n}\n"},
		{name: "continuation inside quotes", in: "a = \"x \\\ny\"\n", want: "a=\"x y\"\n"},
		// A '#' comment swallows the backslash: no continuation.
		{name: "comment before backslash", in: "a = x # y \\\nb = c\n", want: "a=\"x\"\nb=\"c\"\n"},
		{name: "file value", in: "a = < /etc/x\nb =</etc/y\n", want: "a=<\"/etc/x\"\nb=<\"/etc/y\"\n"},
		{name: "variable value", in: "a = $b c\nd = x$y\n", want: "a=$\"$b c\"\nd=$\"x$y\"\n"},
		{name: "quoted dollar is literal", in: `a = "$b"`, want: "a=\"$b\"\n"},
		{name: "unexpected close", in: "}\na = b\n", want: "a=\"b\"\n", errs: []string{"t.conf:1: unexpected '}'"}},
		{name: "missing close", in: "passdb {\n driver = x\n", want: "passdb {\n driver=\"x\"\n}\n",
			errs: []string{"t.conf:1: missing '}': section passdb is not closed"}},
		// authd extension: one setting on the section's line.
		{name: "one-line section", in: "passdb { driver = pam }\na = b\n", want: "passdb {\n driver=\"pam\"\n}\na=\"b\"\n"},
		{name: "one-line empty section", in: "a {}\nb x { }\n", want: "a {\n}\nb \"x\" {\n}\n"},
		{name: "one-line section value with =", in: "userdb { args = uid=vmail gid=vmail }\n", want: "userdb {\n args=\"uid=vmail gid=vmail\"\n}\n"},
		{name: "one-line section two settings", in: "u x { user = a  group = b }\n}\n", want: "",
			errs: []string{"t.conf:1: garbage after '{'", "t.conf:2: unexpected '}'"}},
		{name: "one-line section nested", in: "a { b { } }\n", want: "", errs: []string{"t.conf:1: garbage after '{'"}},
		{name: "no space before brace", in: "passdb{\n}\n", want: "",
			errs: []string{"t.conf:1: expecting '=' or '{' after \"passdb{\""}},
		{name: "too many labels", in: "passdb a b {\n driver = x\n}\nc = d\n", want: "c=\"d\"\n",
			errs: []string{"t.conf:1: expecting '{'"}},
		{name: "bare word", in: "foo\n", want: "", errs: []string{"t.conf:1: expecting '=' or '{' after \"foo\""}},
		{name: "missing key", in: "= x\n", want: "", errs: []string{"t.conf:1: missing setting name"}},
		{name: "close with garbage", in: "a {\n} x\n}\n", want: "a {\n}\n", errs: []string{"t.conf:2: unexpected text after '}'"}},
		{name: "every error reported", in: "}\nfoo\nbar {\n", want: "bar {\n}\n",
			errs: []string{"t.conf:1:", "t.conf:2:", "t.conf:3: missing '}'"}},
		{name: "NUL byte", in: "a = b\x00c\nd = e\n", want: "d=\"e\"\n", errs: []string{"t.conf:1: line contains a NUL byte"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Read("t.conf", []byte(tt.in), nil)
			if got := res.Root.String(); got != tt.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tt.want)
			}
			checkErrs(t, res.Errors, tt.errs)
		})
	}
}

// checkErrs asserts that got holds exactly len(want) problems, each
// containing the corresponding substring.
func checkErrs(t *testing.T, got []*Error, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), got)
	}
	for i, e := range got {
		if !strings.Contains(e.Error(), want[i]) {
			t.Errorf("error %d = %q, want it to contain %q", i, e.Error(), want[i])
		}
	}
}

func TestReadLimits(t *testing.T) {
	long := "a = " + strings.Repeat("x", 100) + "\nb = c\n"
	res := Read("t.conf", []byte(long), &Options{MaxLineLength: 50})
	checkErrs(t, res.Errors, []string{"t.conf:1: line is too long"})
	if got := res.Root.String(); got != "b=\"c\"\n" {
		t.Errorf("tree = %q", got)
	}

	cont := "a = " + strings.Repeat("x \\\n", 40) + "y\nb = c\n"
	res = Read("t.conf", []byte(cont), &Options{MaxLineLength: 50})
	checkErrs(t, res.Errors, []string{"t.conf:1: continued line is too long"})
	if got := res.Root.String(); got != "b=\"c\"\n" {
		t.Errorf("tree = %q", got)
	}

	deep := strings.Repeat("a {\n", MaxSectionDepth+5) + strings.Repeat("}\n", MaxSectionDepth+5)
	res = Read("t.conf", []byte(deep), nil)
	checkErrs(t, res.Errors, []string{fmt.Sprintf("t.conf:%d: sections nested more than", MaxSectionDepth+1)})

	// A broken one-line section inside a broken section keeps the braces
	// balanced: the last '}' closes the outer one.
	res = Read("t.conf", []byte("a b c {\n x { }\n}\nd = e\n"), nil)
	checkErrs(t, res.Errors, []string{"t.conf:1: expecting '{'"})
	if got := res.Root.String(); got != "d=\"e\"\n" {
		t.Errorf("tree = %q", got)
	}
}

// writeFiles creates files (name -> content) under a temp dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mustReadFile is ReadFile for a main file that exists.
func mustReadFile(t *testing.T, path string, opts *Options) *Result {
	t.Helper()
	res, err := ReadFile(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestReadIncludes(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.conf": `a = 1
!include conf.d/*.conf
!include_try missing.conf
!include_try nothere/*.conf
passdb {
  !include pass.ext
}
!include sub/{y,x}.inc
`,
		"conf.d/20-b.conf":    "b = 20\n",
		"conf.d/10-a.conf":    "b = 10\n!include ../nested.ext\n",
		"conf.d/.hidden.conf": "hidden = 1\n",
		"conf.d/x.conf.bak":   "bak = 1\n",
		"nested.ext":          "nested = 1\n",
		"pass.ext":            "driver = pam\n",
		"sub/x.inc":           "x = 1\n",
		"sub/y.inc":           "y = 1\n",
	})
	res := mustReadFile(t, filepath.Join(dir, "main.conf"), nil)
	checkErrs(t, res.Errors, nil)
	want := `a="1"
!include conf.d/10-a.conf
b="10"
!include nested.ext
nested="1"
!include conf.d/20-b.conf
b="20"
passdb {
 !include pass.ext
 driver="pam"
}
!include sub/y.inc
y="1"
!include sub/x.inc
x="1"
`
	if got := strings.ReplaceAll(res.Root.String(), dir+"/", ""); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	// Positions name the file each line came from.
	var nested *Node
	for _, c := range res.Root.Children {
		if c.Key == "nested" {
			nested = c
		}
	}
	if nested == nil || nested.Pos != (Pos{File: filepath.Join(dir, "nested.ext"), Line: 1}) {
		t.Errorf("nested pos = %+v", nested)
	}
	wantFiles := []string{"main.conf", "conf.d/10-a.conf", "nested.ext", "conf.d/20-b.conf", "pass.ext", "sub/y.inc", "sub/x.inc"}
	for i := range wantFiles {
		wantFiles[i] = filepath.Join(dir, wantFiles[i])
	}
	if !slices.Equal(res.Files, wantFiles) {
		t.Errorf("Files %v, want %v", res.Files, wantFiles)
	}
}

func TestReadIncludeErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.conf":  "!include missing.conf\n!include loop.conf\n!include_try self.conf\n!include\n",
		"loop.conf":  "!include main.conf\n",
		"self.conf":  "!include_try self.conf\n",
		"depth.conf": "!include depth.conf\n",
	})
	res := mustReadFile(t, filepath.Join(dir, "main.conf"), nil)
	checkErrs(t, res.Errors, []string{
		"main.conf:1: !include " + dir + "/missing.conf: no such file",
		"main.conf:4: !include: missing file name",
		"loop.conf:1: !include " + dir + "/main.conf: recursive include",
		"self.conf:1: !include_try " + dir + "/self.conf: recursive include",
	})

	// The same file reached through another spelling is still a loop.
	dir2 := writeFiles(t, map[string]string{"a.conf": "!include ./a.conf\n"})
	res = mustReadFile(t, filepath.Join(dir2, "a.conf"), nil)
	checkErrs(t, res.Errors, []string{"recursive include"})

	// Include depth is bounded even without a loop.
	files := map[string]string{}
	for i := 0; i < 30; i++ {
		files[fmt.Sprintf("f%d.conf", i)] = fmt.Sprintf("!include f%d.conf\n", i+1)
	}
	files["f30.conf"] = "a = b\n"
	dir3 := writeFiles(t, files)
	res = mustReadFile(t, filepath.Join(dir3, "f0.conf"), nil)
	checkErrs(t, res.Errors, []string{"includes nested more than 20 deep"})

	// Devices and FIFOs are refused rather than read forever.
	res = Read("t.conf", []byte("!include /dev/zero\n!include_try /dev/null\n"), nil)
	checkErrs(t, res.Errors, []string{"t.conf:1: !include /dev/zero: /dev/zero: not a regular file"})

	// Without includes (text held in memory), both directives are errors.
	res = Read("t.conf", []byte("!include_try x\na = b\n"), &Options{NoIncludes: true})
	checkErrs(t, res.Errors, []string{"t.conf:1: !include_try is not supported here"})

	// A main file that cannot be read is ReadFile's error, not a Result.
	if res, err := ReadFile(filepath.Join(dir, "nope.conf"), nil); err == nil || res != nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing main file: %v, %v", res, err)
	}
}

func TestReadRelativeToWorkingDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{"inc.conf": "x = 1\n"})
	t.Chdir(dir)
	res := Read("demo.conf", []byte("!include inc.conf\n"), nil)
	checkErrs(t, res.Errors, nil)
	if got := res.Root.String(); got != "!include inc.conf\nx=\"1\"\n" {
		t.Errorf("tree = %q", got)
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range [][3]string{
		{"/etc/dovecot/dovecot.conf", "conf.d/x.conf", "/etc/dovecot/conf.d/x.conf"},
		{"/etc/dovecot/dovecot.conf", "/abs", "/abs"},
		{"dovecot.conf", "x.conf", "x.conf"},
		{"a/b.conf", "../c", "c"},
	} {
		if got := Resolve(tc[0], tc[1]); got != tc[2] {
			t.Errorf("Resolve(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestExpandBraces(t *testing.T) {
	tests := map[string]string{
		"a":           "a",
		"{a,b}":       "a|b",
		"x{a,b}y":     "xay|xby",
		"{a,{b,c}}d":  "ad|bd|cd",
		"{a,b}{1,2}":  "a1|a2|b1|b2",
		"{a":          "{a",
		"a}":          "a}",
		"\\{a,b}":     "\\{a,b}",
		"{}":          "",
		"dir/{x,}.co": "dir/x.co|dir/.co",
	}
	for in, want := range tests {
		got, err := expandBraces(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if strings.Join(got, "|") != want {
			t.Errorf("%q -> %q, want %q", in, strings.Join(got, "|"), want)
		}
	}
	if _, err := expandBraces(strings.Repeat("{a,b}", 20)); err == nil {
		t.Error("no error for an exponential pattern")
	}
}

func TestPosString(t *testing.T) {
	if s := (Pos{File: "a.conf", Line: 3}).String(); s != "a.conf:3" {
		t.Error(s)
	}
	if s := (&Error{Pos: Pos{File: "a.conf"}, Msg: "m"}).Error(); s != "a.conf: m" {
		t.Error(s)
	}
	if s := (&Error{Msg: "m"}).Error(); s != "m" {
		t.Error(s)
	}
}
