package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/tabescape"
)

// socketTransport asks over authd's (or Dovecot's) unix sockets: the
// client protocol for authentication, the master protocol for lookups.
type socketTransport struct{ path string }

// errFail is the master protocol's FAIL: the server could not tell.
var errFail = errors.New("the server could not answer (FAIL)")

func (s socketTransport) Close() error { return nil }

// Auth authenticates with PLAIN. Like doveadm, the authzid is the user
// itself, or with a master user the master authenticates and user is the
// login user.
func (s socketTransport) Auth(ctx context.Context, user, master string, password []byte, params []string) (AuthAnswer, error) {
	c, err := dovecot.DialAuth(ctx, s.path)
	if err != nil {
		return AuthAnswer{}, fmt.Errorf("%s: %w", s.path, err)
	}
	defer c.Close()
	authcid := user
	if master != "" {
		authcid = master
	}
	r, err := c.Plain(ctx, params, user, authcid, string(password))
	if err != nil {
		return AuthAnswer{}, err
	}
	ans := AuthAnswer{Result: AuthOK, Fields: r.Fields}
	if r.Cmd != "OK" {
		ans.Result = AuthFailed
		if code, _ := r.Get("code"); code == "temp_fail" {
			ans.Result = AuthTempFail
		}
	}
	return ans, nil
}

// Lookup sends USER or PASS on a master or userdb socket.
func (s socketTransport) Lookup(ctx context.Context, kind LookupKind, user string, params []string) (LookupAnswer, error) {
	params = append([]string{}, params...) // never nil: lookups carry a service
	verb := "USER"
	if kind == PassLookup {
		verb = "PASS"
	}
	var ans LookupAnswer
	err := s.exchange(ctx, verb+"\t1\t"+tabescape.Escape(user), params, func(f []string) (bool, error) {
		switch f[0] {
		case "USER", "PASS":
			ans = LookupAnswer{Found: true, User: user}
			rest := f[2:]
			if f[0] == "USER" && len(f) > 2 {
				ans.User, rest = f[2], f[3:]
			}
			for _, kv := range rest {
				if kv != "" {
					k, v, _ := strings.Cut(kv, "=")
					ans.Fields = append(ans.Fields, [2]string{k, v})
				}
			}
			return true, nil
		case "NOTFOUND":
			return true, nil
		case "FAIL":
			return true, errFail
		}
		return true, fmt.Errorf("unexpected reply %q", strings.Join(f, "\t"))
	})
	return ans, err
}

// List sends LIST with a user mask.
func (s socketTransport) List(ctx context.Context, mask string, params []string, fn func(string)) error {
	params = append([]string{}, params...)
	return s.exchange(ctx, "LIST\t1\tuser="+tabescape.Escape(mask), params, func(f []string) (bool, error) {
		switch f[0] {
		case "LIST":
			if len(f) > 2 {
				fn(f[2])
			}
			return false, nil
		case "DONE":
			if len(f) > 2 && f[2] == "fail" {
				return true, errFail
			}
			return true, nil
		}
		return true, fmt.Errorf("unexpected reply %q", strings.Join(f, "\t"))
	})
}

// exchange sends the handshake and one request line (with params, and
// service=authd unless a service is given; nil params: the line alone),
// then hands each reply line to reply until it says the exchange is done.
func (s socketTransport) exchange(ctx context.Context, line string, params []string, reply func(f []string) (bool, error)) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", s.path)
	if err != nil {
		return err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if params != nil {
		hasService := false
		for _, x := range params {
			hasService = hasService || strings.HasPrefix(x, "service=")
			line += "\t" + tabescape.Escape(x)
		}
		if !hasService {
			line += "\tservice=authd"
		}
	}
	if _, err := fmt.Fprintf(nc, "VERSION\t1\t0\n%s\n", line); err != nil {
		return err
	}
	r := bufio.NewReader(nc)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		f := dovecot.SplitLine(strings.TrimRight(l, "\n"))
		if f[0] == "VERSION" || f[0] == "SPID" {
			continue
		}
		if done, err := reply(f); done {
			return err
		}
	}
}
