//go:build !cgo || osusergo

package passwd

import (
	"bufio"
	"context"
	"os"
	"strings"
)

// Without cgo (or with osusergo), os/user reads /etc/passwd itself, and so
// does listing.
const usesNSS = false

// iterate lists the users of d.File.
func (d *DB) iterate(ctx context.Context, fn func(user string) bool) error {
	f, err := os.Open(d.File)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		if name != "" && !fn(name) {
			return nil
		}
	}
	return sc.Err()
}
