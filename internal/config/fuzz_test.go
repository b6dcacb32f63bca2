package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"sort"
	"testing"

	"github.com/authd-project/authd/internal/conffile"
)

// fuzzFS is a tiny in-memory file system so fuzzed configurations can
// exercise !include, globs and `<file` without touching the disk.
var fuzzFS = map[string]string{
	"inc.conf":      "auth_realms = a b\n!include_try inc.conf\n",
	"conf.d/a.conf": "passdb {\n  driver = pam\n}\n",
	"conf.d/b.conf": "}\nservice auth {\n unix_listener x {\n",
	"value.txt":     "from-file\n",
}

func fuzzOptions() *conffile.Options {
	return &conffile.Options{
		MaxLineLength: 4096,
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := fuzzFS[path.Clean(p)]; ok {
				return []byte(v), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
		Glob: func(pattern string) ([]string, error) {
			var out []string
			for name := range fuzzFS {
				ok, err := path.Match(pattern, name)
				if err != nil {
					return nil, err
				}
				if ok {
					out = append(out, name)
				}
			}
			sort.Strings(out)
			return out, nil
		},
	}
}

// FuzzParse feeds arbitrary bytes to the reader (internal/conffile) and the
// typed layer. Neither may panic; every node must carry its position;
// every error must be an *ErrorList with positions; and a configuration
// that loads must dump to a text that loads again.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("!include inc.conf\n!include conf.d/*.conf\nauth_username_chars = <value.txt\n"))
	f.Add([]byte("a = \"x \\\" y\" # c\nb = 'q' \\\n  cont\nc = $auth_mechanisms x\n"))
	for _, name := range []string{"passwd-file.conf", "sql.conf", "ldap-bind.conf", "ldap-password.conf"} {
		if b, err := os.ReadFile("testdata/dovecot24-examples/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("dovecot_config_version = 2.4.1\nauth_mechanisms {\n  login = yes\n}\npassdb x {\n  driver = static\n  password = $SET:auth_mechanisms\n  fields {\n    a:default = %{user | lower}\n  }\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := fuzzOptions()
		res := conffile.Read("fuzz.conf", data, opts)
		if res.Root == nil {
			t.Fatal("nil tree")
		}
		checkPositions(t, res.Root)

		cfg, err := load("fuzz.conf", data, false, opts)
		checkErrorList(t, err)
		if err != nil {
			return
		}
		var out bytes.Buffer
		cfg.Dump(&out)
		if _, err := load("dump.conf", out.Bytes(), false, opts); err != nil {
			t.Fatalf("dump does not load: %v\ninput:\n%q\ndump:\n%s", err, data, out.String())
		}
	})
}

func checkPositions(t *testing.T, n *conffile.Node) {
	for _, c := range n.Children {
		if c.Pos.File == "" || c.Pos.Line <= 0 {
			t.Fatalf("node %q without position: %+v", c.Key, c.Pos)
		}
		checkPositions(t, c)
	}
}

func checkErrorList(t *testing.T, err error) {
	if err == nil {
		return
	}
	var l *ErrorList
	if !errors.As(err, &l) || len(*l) == 0 {
		t.Fatalf("error is not a non-empty *ErrorList: %T %v", err, err)
	}
	for _, e := range *l {
		if e.Pos.File == "" || e.Msg == "" {
			t.Fatalf("error without file or message: %+v", e)
		}
	}
}
