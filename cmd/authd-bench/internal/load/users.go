package load

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Default formats of the generated user set; bench-compare's data uses the
// same, so the generator and the servers agree on every account.
const (
	DefaultUserFormat = "user%05d@example.com"
	DefaultPassFormat = "pw%05d"
	DefaultUserCount  = 10000
)

// Users is the account set the load draws from: Names[i] logs in with
// Passwords[i].
type Users struct {
	Names     []string
	Passwords []string
}

// Len is the number of accounts.
func (u *Users) Len() int { return len(u.Names) }

// GenerateUsers returns n accounts numbered 1..n: fmt.Sprintf(userFormat, i)
// with password fmt.Sprintf(passFormat, i).
func GenerateUsers(n int, userFormat, passFormat string) (*Users, error) {
	if n < 1 {
		return nil, fmt.Errorf("user count %d: need at least 1", n)
	}
	if n > 10_000_000 {
		return nil, fmt.Errorf("user count %d: at most 10000000", n)
	}
	if userFormat == "" {
		userFormat = DefaultUserFormat
	}
	if passFormat == "" {
		passFormat = DefaultPassFormat
	}
	u := &Users{Names: make([]string, n), Passwords: make([]string, n)}
	for i := range n {
		u.Names[i] = fmt.Sprintf(userFormat, i+1)
		u.Passwords[i] = fmt.Sprintf(passFormat, i+1)
	}
	if strings.Contains(u.Names[0], "%!") || strings.Contains(u.Passwords[0], "%!") {
		return nil, fmt.Errorf("bad user or password format %q / %q", userFormat, passFormat)
	}
	return u, nil
}

// ReadUsers reads one account per line: "user<TAB>password", or
// "user:password" when the line has no TAB (the password may then contain
// ':'). Empty lines and lines starting with '#' are skipped.
func ReadUsers(r io.Reader) (*Users, error) {
	u := &Users{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		if s == "" || s[0] == '#' {
			continue
		}
		sep := "\t"
		if !strings.Contains(s, sep) {
			sep = ":"
		}
		name, pass, ok := strings.Cut(s, sep)
		if !ok || name == "" {
			return nil, fmt.Errorf("users file line %d: want user<TAB>password or user:password", line)
		}
		u.Names = append(u.Names, name)
		u.Passwords = append(u.Passwords, pass)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	if len(u.Names) == 0 {
		return nil, errors.New("users file: no accounts")
	}
	return u, nil
}

// wrongPassword derives a password that is certainly not pass.
func wrongPassword(pass string) string { return pass + "-wrong" }

// unknownUser derives a user name that is certainly not in the set, for
// the master protocol's "failure" requests (NOTFOUND).
func unknownUser(name string) string { return "nosuch-" + name }
