package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// citeRe finds a citation of a document: "docs/protocol.md §1.5",
// "schemes.md", "docs/architecture.md §Cache semantics". Group 1 is the
// file, group 2 the numbered sections after it.
var citeRe = regexp.MustCompile(`((?:[\w.-]+/)*[\w.-]+\.md)((?:,? §\d+(?:\.\d+)*(?:[–-]\d+(?:\.\d+)*)?(?:(?:,| and| or) §?\d+(?:\.\d+)*)*)?)`)

// namedRe finds a named section of docs/architecture.md: "§Cache
// semantics", "§Adding a driver".
var namedRe = regexp.MustCompile(`§([A-Z][a-z]+(?: [a-z]+)*)`)

// TestCitations: every document a source file cites is a file in docs/,
// named with its path, and every numbered section cited exists as a
// heading there, so that a reader of a clone can follow each citation
// (docs/architecture.md, house rule 11).
func TestCitations(t *testing.T) {
	root := "../.."
	sections := docSections(t, filepath.Join(root, "docs"))
	n := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); strings.HasPrefix(name, ".") && path != root || name == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == "citations_test.go" {
			return nil // its comments show the forms it checks
		}
		if ext := filepath.Ext(path); ext != ".go" && ext != ".proto" && d.Name() != "Makefile" && d.Name() != "run" {
			return nil
		}
		n += checkCitations(t, path, sections)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d citations found: the scan is broken", n)
	}
}

// checkCitations checks the citations in one file and returns how many it
// found.
func checkCitations(t *testing.T, path string, sections map[string]map[string]bool) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		for _, m := range citeRe.FindAllStringSubmatch(sc.Text(), -1) {
			doc := strings.TrimLeft(m[1], "./")
			if strings.HasSuffix(doc, "README.md") || strings.Contains(doc, "testdata/") {
				continue
			}
			n++
			secs, ok := sections[doc]
			if !ok {
				t.Errorf("%s:%d: cites %s, which is not a file in docs/", path, line, doc)
				continue
			}
			for _, s := range regexp.MustCompile(`\d+(?:\.\d+)*`).FindAllString(m[2], -1) {
				if !secs[s] {
					t.Errorf("%s:%d: %s has no section %s", path, line, doc, s)
				}
			}
		}
		for _, m := range namedRe.FindAllStringSubmatch(sc.Text(), -1) {
			if !hasNamedSection(sections["docs/architecture.md"], m[1]) {
				t.Errorf("%s:%d: docs/architecture.md has no section %q", path, line, m[1])
			}
		}
	}
	return n
}

// docSections maps "docs/x.md" to its sections: the numbers of numbered
// headings ("## 1. Client protocol", "### 1.5 Server replies"), the whole
// text of the others ("## Cache semantics").
func docSections(t *testing.T, dir string) map[string]map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no docs in %s: %v", dir, err)
	}
	num := regexp.MustCompile(`^#+\s+(\d+(?:\.\d+)*)\.?\s`)
	out := map[string]map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		secs := map[string]bool{}
		for _, l := range strings.Split(string(data), "\n") {
			if m := num.FindStringSubmatch(l); m != nil {
				secs[m[1]] = true
			} else if strings.HasPrefix(l, "#") {
				secs[strings.TrimSpace(strings.TrimLeft(l, "#"))] = true
			}
		}
		out["docs/"+filepath.Base(f)] = secs
	}
	return out
}

// hasNamedSection reports whether a heading is name, or starts it ("§Adding
// a driver says how …"), or starts with it (a name that a comment wraps
// onto the next line: "§Cache" then "semantics").
func hasNamedSection(secs map[string]bool, name string) bool {
	for h := range secs {
		if strings.HasPrefix(h, name) || strings.HasPrefix(name, h) {
			return true
		}
	}
	return false
}
