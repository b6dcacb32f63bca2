package compare

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
	"github.com/authd-project/authd/schemes"
)

// Account is one user of the benchmark data, with the password stored in
// every scheme a scenario needs.
type Account struct {
	Name, Password string
	SHA512Crypt    string // "$6$salt$hash", default 5000 rounds, without {SHA512-CRYPT}
	SSHA           string // base64, without {SSHA}
}

// Data is the account set every scenario and both servers use.
type Data struct {
	Accounts []Account
}

// Users returns the first n accounts (all when n ≤ 0) as the load
// generator's user set.
func (d *Data) Users(n int) *load.Users {
	if n <= 0 || n > len(d.Accounts) {
		n = len(d.Accounts)
	}
	u := &load.Users{Names: make([]string, n), Passwords: make([]string, n)}
	for i := range n {
		u.Names[i], u.Passwords[i] = d.Accounts[i].Name, d.Accounts[i].Password
	}
	return u
}

// dataVersion names the cache file layout; bump it when Account changes.
const dataVersion = "v1"

// LoadOrBuildData returns n accounts user%05d@example.com / pw%05d. The
// SHA512-CRYPT hashes (≈1.5 ms each) are the expensive part: they are made
// on every core with authd's own schemes.Generate, and the set is kept in
// cacheDir (when not empty) so that later runs reuse it.
func LoadOrBuildData(ctx context.Context, n int, cacheDir string, progress func(string)) (*Data, error) {
	var path string
	if cacheDir != "" {
		path = filepath.Join(cacheDir, fmt.Sprintf("accounts-%s-%d.tsv", dataVersion, n))
		if d, err := readData(path, n); err == nil {
			progress(fmt.Sprintf("data: %d accounts from %s", n, path))
			return d, nil
		}
	}
	users, err := load.GenerateUsers(n, load.DefaultUserFormat, load.DefaultPassFormat)
	if err != nil {
		return nil, err
	}
	d := &Data{Accounts: make([]Account, n)}
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if i%1000 == 0 && gctx.Err() != nil {
					return gctx.Err()
				}
				pw := []byte(users.Passwords[i])
				crypt, err := schemes.Generate("SHA512-CRYPT", pw, "", 0)
				if err != nil {
					return err
				}
				ssha, err := schemes.Generate("SSHA", pw, "", 0)
				if err != nil {
					return err
				}
				d.Accounts[i] = Account{Name: users.Names[i], Password: users.Passwords[i], SHA512Crypt: crypt, SSHA: ssha}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("generating hashes: %w", err)
	}
	if path != "" {
		if err := writeData(path, d); err != nil {
			progress(fmt.Sprintf("data: could not keep the data in %s: %v", path, err))
		}
	}
	return d, nil
}

func readData(path string, n int) (*Data, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Data{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 4 || !strings.HasPrefix(p[2], "$6$") || p[3] == "" {
			return nil, fmt.Errorf("%s: malformed line %d", path, len(d.Accounts)+1)
		}
		d.Accounts = append(d.Accounts, Account{Name: p[0], Password: p[1], SHA512Crypt: p[2], SSHA: p[3]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(d.Accounts) != n {
		return nil, fmt.Errorf("%s: %d accounts, want %d", path, len(d.Accounts), n)
	}
	want, _ := load.GenerateUsers(1, load.DefaultUserFormat, load.DefaultPassFormat)
	if d.Accounts[0].Name != want.Names[0] || d.Accounts[0].Password != want.Passwords[0] {
		return nil, fmt.Errorf("%s: made with other user formats", path)
	}
	return d, nil
}

func writeData(path string, d *Data) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for _, a := range d.Accounts {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", a.Name, a.Password, a.SHA512Crypt, a.SSHA)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// passwdFile renders a passwd-file with one scheme for every account.
func (d *Data) passwdFile(scheme string) []byte {
	var b strings.Builder
	for _, a := range d.Accounts {
		b.WriteString(a.Name)
		b.WriteString(":{")
		b.WriteString(scheme)
		b.WriteByte('}')
		b.WriteString(a.stored(scheme))
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func (a *Account) stored(scheme string) string {
	switch scheme {
	case "SHA512-CRYPT":
		return a.SHA512Crypt
	case "SSHA":
		return a.SSHA
	}
	return a.Password
}
