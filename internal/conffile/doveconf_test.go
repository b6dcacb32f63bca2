package conffile

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/testenv"
)

// These tests run the real doveconf (Dovecot 2.3.19) on small main
// configurations and check that the reader finds what Dovecot finds: the
// value of a setting, whether the file is accepted, the line of the first
// error, the ambiguous-'#' warning. They skip without doveconf and fail
// instead under AUTHD_REQUIRE_INTEGRATION=1 (testenv.Require).

// base makes every snippet a configuration doveconf accepts on its own.
const base = "passdb {\n  driver = pam\n}\n"

// doveconfRun is one doveconf run on dir/dovecot.conf.
type doveconfRun struct {
	out, stderr string
	ok          bool
	errPos      Pos // where doveconf's fatal error points, if it names a line
}

// doveconfErrLine finds where doveconf's fatal error points: "… file F
// line N: …", or for a missing '}' "(section started at F:N)".
var doveconfErrLine = regexp.MustCompile(`Error in configuration file (\S+) line (\d+):|section started at (\S+):(\d+)\)`)

func findDoveconf(t *testing.T) string {
	t.Helper()
	testenv.Require(t, "doveconf")
	if p, err := exec.LookPath("doveconf"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/doveconf", "/usr/sbin/doveconf"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("doveconf: testenv.Require found it, but not where expected")
	return ""
}

// runDoveconf writes files (name -> content, "dovecot.conf" is the main
// one) to a new directory and runs doveconf -c on it with args.
func runDoveconf(t *testing.T, bin string, files map[string]string, args ...string) (string, doveconfRun) {
	t.Helper()
	dir := writeFiles(t, files)
	main := filepath.Join(dir, "dovecot.conf")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"-c", main}, args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
		t.Fatalf("doveconf did not run: %v", err)
	}
	r := doveconfRun{out: stdout.String(), stderr: stderr.String(), ok: err == nil}
	if m := doveconfErrLine.FindStringSubmatch(r.stderr); m != nil {
		file, line := m[1], m[2]
		if file == "" {
			file, line = m[3], m[4]
		}
		n, _ := strconv.Atoi(line)
		r.errPos = Pos{File: file, Line: n}
	}
	return main, r
}

// rootValue is the value a plain root setting ends up with: its last
// assignment, or "" (auth_default_realm's default).
func rootValue(root *Node, key string) string {
	v := ""
	for _, c := range root.Children {
		if !c.Section && c.Key == key {
			v = c.Value
		}
	}
	return v
}

// TestDoveconfValues: the value Dovecot gives auth_default_realm is the
// value in the tree, for each way of writing it.
func TestDoveconfValues(t *testing.T) {
	bin := findDoveconf(t)
	tests := []struct {
		name  string
		conf  string
		files map[string]string
		warn  bool // doveconf warns about an ambiguous '#'
	}{
		{name: "plain", conf: "auth_default_realm =   lots   of   space   \n"},
		{name: "no space", conf: "auth_default_realm=nospace\n"},
		{name: "quoted hash", conf: `auth_default_realm = "quoted # not a comment"` + "\n"},
		{name: "single quotes", conf: `auth_default_realm = 'it\'s'` + "\n"},
		{name: "outer quotes only", conf: `auth_default_realm = "a" "b"` + "\n"},
		// Decision: \n and \t inside quotes are the letters n and t.
		{name: "backslash letters", conf: `auth_default_realm = "esc \" \\ \n \t x"` + "\n"},
		{name: "lone quote", conf: `auth_default_realm = "` + "\n"},
		{name: "unterminated quote", conf: `auth_default_realm = "unterminated # x` + "\n"},
		{name: "comment", conf: "auth_default_realm = x # comment\n"},
		{name: "ambiguous hash", conf: "auth_default_realm = x#y\n", warn: true},
		{name: "continuation", conf: "auth_default_realm = a \\\n   b\\\nc\n"},
		{name: "continuation in quotes", conf: "auth_default_realm = \"a \\\nb\"\n"},
		{name: "lone backslash line", conf: "auth_default_realm = x \\\n\\\ny\n"},
		// Decision: a comment or blank line ends a continued line, which
		// is dropped (and the next line stands alone).
		{name: "comment inside continuation", conf: "auth_default_realm = a \\\n# c\nauth_realms = x\n"},
		{name: "blank inside continuation", conf: "auth_default_realm = a \\\n\nauth_realms = x\n"},
		// Decision: '\' on the last line of the main file: dropped.
		{name: "backslash at end of file", conf: "auth_default_realm = keep\nauth_default_realm = lost \\\n"},
		// Decision: '\' on the last line of an included file: the line
		// goes on in the including file.
		{name: "backslash at end of include", conf: "!include inc.conf\nauth_realms = x\n",
			files: map[string]string{"inc.conf": "auth_default_realm = one \\\n"}},
		// Decision: glob matches are read in ascending order (b wins).
		{name: "glob order", conf: "!include inc/*.conf\n",
			files: map[string]string{"inc/a.conf": "auth_default_realm = A\n", "inc/b.conf": "auth_default_realm = B\n"}},
		{name: "brace order", conf: "!include inc/{b,a}.conf\n",
			files: map[string]string{"inc/a.conf": "auth_default_realm = A\n", "inc/b.conf": "auth_default_realm = B\n"}},
		{name: "hidden files", conf: "!include inc/*\n",
			files: map[string]string{"inc/a.conf": "auth_default_realm = A\n", "inc/.b.conf": "auth_default_realm = B\n"}},
		{name: "CRLF", conf: "auth_default_realm = x \r\n"},
		{name: "CR CR LF", conf: "auth_default_realm = x\r\r\n"},
		{name: "CR at end of file", conf: "auth_default_realm = x \r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"dovecot.conf": base + tt.conf}
			for k, v := range tt.files {
				files[k] = v
			}
			main, dc := runDoveconf(t, bin, files, "-h", "auth_default_realm")
			if !dc.ok {
				t.Fatalf("doveconf rejected the file: %s", dc.stderr)
			}
			want := strings.TrimSuffix(dc.out, "\n")
			res := mustReadFile(t, main, nil)
			checkErrs(t, res.Errors, nil)
			if got := rootValue(res.Root, "auth_default_realm"); got != want {
				t.Errorf("reader %q, doveconf %q", got, want)
			}
			dcWarn := strings.Contains(dc.stderr, "Ambiguous '#'")
			warned := false
			for _, w := range res.Warnings {
				warned = warned || strings.Contains(w.Msg, "ambiguous '#'")
			}
			if dcWarn != tt.warn || warned != tt.warn {
				t.Errorf("ambiguous '#' warning: doveconf %v, reader %v, want %v", dcWarn, warned, tt.warn)
			}
		})
	}
}

// TestDoveconfErrors: the reader refuses what doveconf refuses for its
// syntax, and accepts what it accepts (but for authd's one-line
// sections). Dovecot stops at its first error; the reader reports every
// error, and one of them is at the line Dovecot names.
func TestDoveconfErrors(t *testing.T) {
	bin := findDoveconf(t)
	tests := []struct {
		name  string
		conf  string
		files map[string]string
		authd bool // deliberate difference: authd accepts, doveconf does not
	}{
		// Decision: a missing '}' is an error in the main configuration.
		{name: "missing close", conf: "service auth {\n"},
		{name: "unexpected close", conf: "}\n"},
		{name: "text after close", conf: "service auth {\n} x\n"},
		{name: "brace glued", conf: "service{\n}\n"},
		{name: "two names", conf: "service a b {\n}\n"},
		{name: "unterminated quoted name", conf: "service \"auth {\n}\n"},
		{name: "bare word", conf: "auth_realms\n"},
		{name: "garbage after brace", conf: "service auth { x\n}\n"},
		{name: "missing include", conf: "!include nothere.conf\n"},
		{name: "missing include glob", conf: "!include nothere/*.conf\n"},
		{name: "include loop", conf: "!include dovecot.conf\n"},
		{name: "missing include_try", conf: "!include_try nothere.conf\n"},
		{name: "quoted section name", conf: "service \"auth\" {\n}\n"},
		// Decision: !include works inside a section, and the included
		// file's '}' closes the including file's section, so the
		// including file's own '}' is then unexpected.
		{name: "include inside section", conf: "service auth {\n!include svc.inc\n}\n",
			files: map[string]string{"svc.inc": "client_limit = 1\n"}},
		{name: "include closes section", conf: "service auth {\n!include svc.inc\n}\n",
			files: map[string]string{"svc.inc": "client_limit = 1\n}\n"}},
		{name: "one-line section", conf: "service auth { client_limit = 1 }\n", authd: true},
		{name: "one-line empty section", conf: "service auth { }\n", authd: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"dovecot.conf": base + tt.conf}
			for k, v := range tt.files {
				files[k] = v
			}
			main, dc := runDoveconf(t, bin, files, "-n")
			res := mustReadFile(t, main, nil)
			ok := len(res.Errors) == 0
			if tt.authd {
				if ok == dc.ok || !ok {
					t.Errorf("expected authd to accept and doveconf to refuse: reader %v, doveconf %v", res.Errors, dc.stderr)
				}
				return
			}
			if ok != dc.ok {
				t.Fatalf("doveconf ok=%v (%s), reader errors %v", dc.ok, strings.TrimSpace(dc.stderr), res.Errors)
			}
			if ok {
				return
			}
			if dc.errPos.Line == 0 {
				t.Fatalf("no position in doveconf's error: %s", dc.stderr)
			}
			for _, e := range res.Errors {
				if filepath.Base(e.Pos.File) == filepath.Base(dc.errPos.File) && e.Pos.Line == dc.errPos.Line {
					return
				}
			}
			t.Errorf("no reader error at %v (%s): %v", dc.errPos, strings.TrimSpace(dc.stderr), res.Errors)
		})
	}
}

// TestDoveconfIncludeInSection: the settings of a file included inside a
// section belong to that section.
func TestDoveconfIncludeInSection(t *testing.T) {
	bin := findDoveconf(t)
	files := map[string]string{
		"dovecot.conf": "passdb {\n  !include pass.inc\n}\n",
		"pass.inc":     "driver = pam\nargs = \"a b\" # c\n",
	}
	main, dc := runDoveconf(t, bin, files, "-h", "passdb")
	if !dc.ok {
		t.Fatalf("doveconf: %s", dc.stderr)
	}
	want := map[string]string{}
	for _, l := range strings.Split(dc.out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " = "); ok && (k == "driver" || k == "args") {
			want[k] = v
		}
	}
	res := mustReadFile(t, main, nil)
	checkErrs(t, res.Errors, nil)
	got := map[string]string{}
	for _, c := range res.Root.Children {
		if c.Section && c.Key == "passdb" {
			for _, s := range c.Children {
				if !s.IsInclude() {
					got[s.Key] = s.Value
				}
			}
		}
	}
	if len(want) != 2 || got["driver"] != want["driver"] || got["args"] != want["args"] {
		t.Errorf("reader %v, doveconf %v", got, want)
	}
}
