package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// The checkpassword passdb and userdb against Dovecot 2.3's, each running
// the same program with its own reply program (authd's
// "authd checkpassword-reply", Dovecot's checkpassword-reply), asked by
// doveadm: "auth test" through the client socket and "user" through the
// userdb socket (the master protocol, AUTHORIZED=1 lookups), compared
// output and exit code alike.

const cpDiffScript = `#!/bin/sh
input=$(head -c 600 <&3 | tr '\0' '\n')
user=$(printf '%s\n' "$input" | sed -n 1p)
pass=$(printf '%s\n' "$input" | sed -n 2p)
case "$user" in
alice@example.com|renamed@example.com) ;;
tempfail@example.com) exit 111 ;;
*) [ -n "$AUTHORIZED" ] && exit 3; exit 1 ;;
esac
if [ -n "$AUTHORIZED" ]; then
  AUTHORIZED=2; export AUTHORIZED
else
  [ "$pass" = secret ] || exit 1
fi
[ "$user" = renamed@example.com ] && user=alice@example.com
USER=$user HOME=/home/alice userdb_uid=1000 userdb_gid=1000 userdb_mail=maildir:~/Maildir quota_rule='*:storage=1G'
EXTRA="userdb_uid userdb_gid userdb_mail quota_rule"
export USER HOME userdb_uid userdb_gid userdb_mail quota_rule EXTRA
exec "$@"
`

var rePID = regexp.MustCompile(`<[0-9]+>`)

func TestCheckpasswordAgainstDovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	testenv.Require(t, "sh", "head", "tr", "sed")
	dir := testenv.Dir(t)
	script := filepath.Join(dir, "checkpassword.sh")
	if err := os.WriteFile(script, []byte(cpDiffScript), 0o755); err != nil {
		t.Fatal(err)
	}
	dbs := "auth_failure_delay = 0\npassdb {\n  driver = checkpassword\n  args = " + script +
		"\n}\nuserdb {\n  driver = checkpassword\n  args = " + script + "\n}\n"
	dc := testenv.StartDovecot(t, testenv.DovecotOptions{Dir: dir, Config: "auth_mechanisms = plain\ndisable_plaintext_auth = no\n" + dbs})
	p := startAuthd(t, "base_dir = $DIR/run\nauth_mechanisms = plain\n"+dbs+`service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-userdb {
    mode = 0666
  }
}
`, "run/auth-client", nil)
	da := testenv.NewDoveadm(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i, c := range []struct {
		name string
		args []string
	}{
		{"user-found", []string{"user", "alice@example.com"}},
		{"user-renamed", []string{"user", "renamed@example.com"}},
		{"user-unknown", []string{"user", "nosuch@example.com"}},
		{"user-tempfail", []string{"user", "tempfail@example.com"}},
		{"auth-ok", []string{"auth", "test", "alice@example.com", "secret"}},
		{"auth-renamed", []string{"auth", "test", "renamed@example.com", "secret"}},
		{"auth-wrong", []string{"auth", "test", "alice@example.com", "wrong"}},
		{"auth-unknown", []string{"auth", "test", "nosuch@example.com", "secret"}},
		{"auth-tempfail", []string{"auth", "test", "tempfail@example.com", "secret"}},
	} {
		rip := "192.0.2." + strconv.Itoa(i+1) // Dovecot's penalty is per remote IP
		t.Run(c.name, func(t *testing.T) {
			socks := map[string][2]string{
				"user": {dc.Socket("auth-userdb"), p.path("run/auth-userdb")},
				"auth": {dc.Socket("auth-client"), p.path("run/auth-client")},
			}[c.args[0]]
			dout, dcode := doveadmAt(ctx, t, da, socks[0], rip, c.args)
			aout, acode := doveadmAt(ctx, t, da, socks[1], rip, c.args)
			if dcode != acode || dout != aout {
				t.Errorf("authd (exit %d):\n%s\nDovecot (exit %d):\n%s", acode, aout, dcode, dout)
			}
			if c.name == "user-found" && !strings.Contains(dout, "maildir:/home/alice/Maildir") {
				t.Errorf("Dovecot's answer lacks the program's fields:\n%s", dout)
			}
		})
	}
}

// doveadmAt runs "doveadm user" or "doveadm auth test" (args) against the
// socket sock and returns the output, with doveadm's own pid masked, and
// the exit code.
func doveadmAt(ctx context.Context, t *testing.T, da *testenv.Doveadm, sock, rip string, args []string) (string, int) {
	t.Helper()
	cmd := []string{"user", "-a", sock, args[1]}
	if args[0] == "auth" {
		cmd = append([]string{"auth", "test", "-a", sock, "-x", "service=imap", "-x", "rip=" + rip}, args[2:]...)
	}
	out, code, err := da.Run(ctx, cmd...)
	if err != nil {
		t.Fatal(err)
	}
	return rePID.ReplaceAllString(out, "<PID>"), code
}
