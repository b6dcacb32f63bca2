package vars

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/testenv"
)

// dovecot24 is one private Dovecot 2.4.1 for TestLiveDovecot24, run by the
// shared Debian 13 harness (testenv.StartDovecot24, docs/testing.md §4.6):
// the cached root every 2.4 test uses, the instance directory bind-mounted
// at the same path inside it. It is stopped at the end of the (sub)test
// that started it.
type dovecot24 struct {
	*testenv.Dovecot24
	version string // `dovecot --version`
}

// startDovecot24 writes files (name -> content) into a new instance
// directory and starts Dovecot 2.4 with conf(dir) as its configuration.
func startDovecot24(t *testing.T, files map[string]string, conf func(dir string) string) *dovecot24 {
	t.Helper()
	dir := testenv.Dir(t)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dc := &dovecot24{Dovecot24: testenv.StartDovecot24(t, testenv.Dovecot24Options{Dir: dir, Config: conf(dir)})}
	out, _, err := dc.Chroot.Run(context.Background(), "/usr/sbin/dovecot", "--version")
	if err != nil {
		t.Fatal(err)
	}
	dc.version = strings.TrimSpace(out)
	return dc
}

// path is a path in the instance directory.
func (dc *dovecot24) path(name string) string { return filepath.Join(dc.Dir, name) }

func (dc *dovecot24) log() string {
	b, _ := os.ReadFile(dc.Log)
	return string(b)
}

// quote24 writes v as a quoted 2.4 configuration value.
func quote24(v string) string {
	return fmt.Sprintf(`"%s"`, strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v))
}
