package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
