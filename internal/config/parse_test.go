package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// treeString renders a tree compactly: `key=value` (with <file / $var
// markers), `type label {` … `}`, `!include path`.
func treeString(n *Node) string {
	var b strings.Builder
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		for _, c := range n.Children {
			ind := strings.Repeat(" ", depth)
			switch {
			case isMarker(c):
				fmt.Fprintf(&b, "%s%s %s\n", ind, c.Key, filepath.Base(c.Value))
			case c.Section:
				if c.Label != "" {
					fmt.Fprintf(&b, "%s%s %q {\n", ind, c.Key, c.Label)
				} else {
					fmt.Fprintf(&b, "%s%s {\n", ind, c.Key)
				}
				walk(c, depth+1)
				fmt.Fprintf(&b, "%s}\n", ind)
			default:
				mark := map[ValueKind]string{ValuePlain: "", ValueFile: "<", ValueVariable: "$"}[c.Kind]
				fmt.Fprintf(&b, "%s%s=%s%q\n", ind, c.Key, mark, c.Value)
			}
		}
	}
	walk(n, 0)
	return b.String()
}

func TestParseSyntax(t *testing.T) {
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
		{name: "close with garbage", in: "a {\n} x\n}\n", want: "a {\n}\n", errs: []string{"t.conf:2: expecting '{'"}},
		{name: "every error reported", in: "}\nfoo\nbar {\n", want: "bar {\n}\n",
			errs: []string{"t.conf:1:", "t.conf:2:", "t.conf:3: missing '}'"}},
		{name: "NUL byte", in: "a = b\x00c\nd = e\n", want: "d=\"e\"\n", errs: []string{"t.conf:1: line contains a NUL byte"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := Parse("t.conf", []byte(tt.in), nil)
			if got := treeString(root); got != tt.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, tt.want)
			}
			checkErrs(t, err, tt.errs)
		})
	}
}

// checkErrs asserts that err lists exactly len(want) problems, each
// containing the corresponding substring.
func checkErrs(t *testing.T, err error, want []string) {
	t.Helper()
	got := AsErrorList(err)
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i, e := range got {
		if !strings.Contains(e.Error(), want[i]) {
			t.Errorf("error %d = %q, want it to contain %q", i, e.Error(), want[i])
		}
	}
}

func TestParseLimits(t *testing.T) {
	long := "a = " + strings.Repeat("x", 100) + "\nb = c\n"
	root, err := Parse("t.conf", []byte(long), &Options{MaxLineLength: 50})
	checkErrs(t, err, []string{"t.conf:1: line is too long"})
	if got := treeString(root); got != "b=\"c\"\n" {
		t.Errorf("tree = %q", got)
	}

	cont := "a = " + strings.Repeat("x \\\n", 40) + "y\nb = c\n"
	root, err = Parse("t.conf", []byte(cont), &Options{MaxLineLength: 50})
	if err == nil || !strings.Contains(err.Error(), "continued line is too long") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(treeString(root), "b=\"c\"") {
		t.Errorf("tree = %q", treeString(root))
	}

	deep := strings.Repeat("a {\n", maxSectionDepth+5) + strings.Repeat("}\n", maxSectionDepth+5)
	_, err = Parse("t.conf", []byte(deep), nil)
	checkErrs(t, err, []string{fmt.Sprintf("t.conf:%d: sections nested more than", maxSectionDepth+1)})
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

func TestParseIncludes(t *testing.T) {
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
	root, err := ParseFile(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	want := `a="1"
!include 10-a.conf
b="10"
!include nested.ext
nested="1"
!include 20-b.conf
b="20"
passdb {
 !include pass.ext
 driver="pam"
}
!include y.inc
y="1"
!include x.inc
x="1"
`
	if got := treeString(root); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
	// Positions name the file each line came from.
	var nested *Node
	for _, c := range root.Children {
		if c.Key == "nested" {
			nested = c
		}
	}
	if nested == nil || nested.Pos != (Pos{File: filepath.Join(dir, "nested.ext"), Line: 1}) {
		t.Errorf("nested pos = %+v", nested)
	}
}

func TestParseIncludeErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"main.conf":  "!include missing.conf\n!include loop.conf\n!include_try self.conf\n!include\n",
		"loop.conf":  "!include main.conf\n",
		"self.conf":  "!include_try self.conf\n",
		"depth.conf": "!include depth.conf\n",
	})
	_, err := ParseFile(filepath.Join(dir, "main.conf"))
	checkErrs(t, err, []string{
		"main.conf:1: !include " + dir + "/missing.conf: no such file",
		"main.conf:4: !include: missing file name",
		"loop.conf:1: !include " + dir + "/main.conf: recursive include",
		"self.conf:1: !include_try " + dir + "/self.conf: recursive include",
	})

	// The same file reached through another spelling is still a loop.
	dir2 := writeFiles(t, map[string]string{"a.conf": "!include ./a.conf\n"})
	_, err = ParseFile(filepath.Join(dir2, "a.conf"))
	checkErrs(t, err, []string{"recursive include"})

	// Include depth is bounded even without a loop.
	files := map[string]string{}
	for i := 0; i < 30; i++ {
		files[fmt.Sprintf("f%d.conf", i)] = fmt.Sprintf("!include f%d.conf\n", i+1)
	}
	files["f30.conf"] = "a = b\n"
	dir3 := writeFiles(t, files)
	_, err = ParseFile(filepath.Join(dir3, "f0.conf"))
	checkErrs(t, err, []string{"includes nested more than 20 deep"})

	// Devices and FIFOs are refused rather than read forever.
	_, err = Parse("t.conf", []byte("!include /dev/zero\n!include_try /dev/null\n"), nil)
	checkErrs(t, err, []string{"t.conf:1: !include /dev/zero: /dev/zero: not a regular file"})
}

func TestParseRelativeToWorkingDir(t *testing.T) {
	dir := writeFiles(t, map[string]string{"inc.conf": "x = 1\n"})
	t.Chdir(dir)
	root, err := Parse("demo.conf", []byte("!include inc.conf\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := treeString(root); got != "!include inc.conf\nx=\"1\"\n" {
		t.Errorf("tree = %q", got)
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
