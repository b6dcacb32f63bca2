package conffile

import (
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"
)

// fuzzFS is a tiny in-memory file system so fuzzed files can exercise
// !include, globs and loops without touching the disk.
var fuzzFS = map[string]string{
	"inc.conf":      "a = b\n!include_try inc.conf\n",
	"conf.d/a.conf": "passdb {\n  driver = pam\n",
	"conf.d/b.conf": "}\nservice auth {\n unix_listener x {\n",
	"cont.conf":     "k = v \\\n",
}

func fuzzFSOptions(o Options) *Options {
	o.MaxLineLength = 4096
	o.ReadFile = func(p string) ([]byte, error) {
		if v, ok := fuzzFS[path.Clean(p)]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	o.Glob = func(pattern string) ([]string, error) {
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
	}
	return &o
}

// FuzzRead feeds arbitrary bytes to the reader with the main-file, the
// ext-file and the 2.4 options. It must not panic, every node must carry
// its position and sit at most MaxSectionDepth deep, every problem must
// have a position and a message, and no value may span lines. Seeds:
// testdata/fuzz/FuzzRead.
func FuzzRead(f *testing.F) {
	f.Add([]byte("passdb {\n  driver = pam\n}\n!include inc.conf\n!include conf.d/*.conf\n"))
	f.Add([]byte("a = \"x \\\" y\" # c\nb = 'q' \\\n  cont\nc = $auth_mechanisms x\nd = <f\n"))
	f.Add([]byte("s { k = v }\nt \"a b\" {\n}\n}\n!include cont.conf\nnext = 1\n"))
	f.Add([]byte("group @g x {\n\"q k\" = 1\n}\na\v=\fb\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range []Options{{}, ExtFile(), {Version: Version24}} {
			res := Read("fuzz.conf", data, fuzzFSOptions(o))
			if res == nil || res.Root == nil {
				t.Fatal("no tree")
			}
			checkTree(t, res.Root, 0)
			for _, e := range append(append([]*Error{}, res.Errors...), res.Warnings...) {
				if e.Pos.File == "" || e.Pos.Line <= 0 || e.Msg == "" {
					t.Fatalf("problem without position or message: %+v", e)
				}
			}
		}
	})
}

func checkTree(t *testing.T, n *Node, depth int) {
	if depth > MaxSectionDepth {
		t.Fatalf("section %q nested %d deep", n.Key, depth)
	}
	for _, c := range n.Children {
		if c.Pos.File == "" || c.Pos.Line <= 0 {
			t.Fatalf("node %q without position: %+v", c.Key, c.Pos)
		}
		if strings.ContainsAny(c.Key+c.Value+c.Label, "\n\x00") {
			t.Fatalf("node %q spans lines or holds NUL: %+v", c.Key, c)
		}
		checkTree(t, c, depth+1)
	}
}
