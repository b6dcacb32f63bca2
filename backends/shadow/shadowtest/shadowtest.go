// Package shadowtest creates throwaway local system accounts for the tests
// of the shadow and pam passdbs: a real /etc/passwd and /etc/shadow entry
// with a known password, hashed by the system's own chpasswd (yescrypt on
// Debian 12), removed again when the test ends.
//
// It needs root and the shadow-utils commands. Without them a test skips,
// or fails under AUTHD_REQUIRE_INTEGRATION=1 (docs/architecture.md, house rule 7),
// through RequireRoot and testenv.Require.
package shadowtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// Commands are the shadow-utils binaries NewUser and the account helpers
// run.
var Commands = []string{"useradd", "userdel", "usermod", "chpasswd", "chage"}

// RequireRoot skips the test, or fails it under
// AUTHD_REQUIRE_INTEGRATION=1, when the test does not run as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	msg := "needs root: " + why
	if testenv.Integration() {
		t.Fatalf("%s (and %s=1, so this is a failure, not a skip)", msg, testenv.EnvRequire)
	}
	t.Skip(msg)
}

// User is a local account created for one test.
type User struct {
	Name     string
	Password string
}

// NewUser creates a local account (no home directory, nologin shell) named
// authdtest<digits> with password set through chpasswd, so the hash is
// whatever the system's PAM password stack writes. userdel removes the
// account (and its group) at cleanup.
func NewUser(t testing.TB, password string) *User {
	t.Helper()
	RequireRoot(t, "creates a local user with useradd")
	testenv.Require(t, Commands...)
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	u := &User{Name: fmt.Sprintf("authdtest%06d", n.Int64()), Password: password}
	Run(t, "", "useradd", "-M", "-s", "/usr/sbin/nologin", u.Name)
	t.Cleanup(func() {
		if out, err := command("", "userdel", u.Name); err != nil {
			t.Errorf("userdel %s: %v\n%s", u.Name, err, out)
		}
	})
	Run(t, u.Name+":"+password+"\n", "chpasswd")
	return u
}

// Hash returns the user's password field from /etc/shadow.
func (u *User) Hash(t testing.TB) string {
	t.Helper()
	f, err := os.Open("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		if name == u.Name {
			hash, _, _ := strings.Cut(rest, ":")
			return hash
		}
	}
	t.Fatalf("%s not in /etc/shadow", u.Name)
	return ""
}

// Modify runs a shadow-utils command with the user name appended, e.g.
// u.Modify(t, "usermod", "-L") or u.Modify(t, "chage", "-E", "0").
func (u *User) Modify(t testing.TB, argv ...string) {
	t.Helper()
	Run(t, "", append(argv, u.Name)...)
}

// Run runs a command with stdin and fails the test if it fails.
func Run(t testing.TB, stdin string, argv ...string) {
	t.Helper()
	if out, err := command(stdin, argv...); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

func command(stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		// A non-login PATH may lack /usr/sbin.
		path = "/usr/sbin/" + argv[0]
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}
