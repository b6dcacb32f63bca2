package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/config"
)

// Every authd.conf example in README.md loads: the syntax and settings are
// checked by the same loader authd uses (drivers are not built: their
// files live on the reader's machine, not here).
func TestREADMEConfigExamples(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, body := range fencedBlocks(string(data)) {
		if !strings.Contains(body, "passdb {") && !strings.Contains(body, "driver = sql\n") {
			continue
		}
		if strings.HasPrefix(body, "# /etc/dovecot/dovecot-") || strings.HasPrefix(body, "# dovecot.conf") {
			continue // a driver's own file or Dovecot's config: not authd.conf
		}
		n++
		path := filepath.Join(t.TempDir(), "authd.conf")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := config.Load(path); err != nil {
			t.Errorf("README example %d does not load: %v\n%s", n, err, body)
		}
	}
	if n < 4 {
		t.Fatalf("found only %d authd.conf examples in README.md", n)
	}
}

// fencedBlocks returns the bodies of ``` code blocks without a language.
func fencedBlocks(md string) []string {
	var out []string
	var cur []string
	in, plain := false, false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				if plain {
					out = append(out, strings.Join(cur, "\n")+"\n")
				}
				in, cur = false, nil
				continue
			}
			in, plain = true, line == "```"
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return out
}
