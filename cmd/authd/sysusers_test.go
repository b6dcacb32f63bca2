package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/shadow/shadowtest"
	"github.com/authd-project/authd/internal/testenv"
)

// sysUsersConf is the RHEL "Dovecot with PAM" setup with the passdb
// driver left open: pam (in the pam build) or shadow (pure Go).
const sysUsersConf = `
base_dir = $DIR/run
auth_failure_delay = 0
first_valid_uid = 1000
passdb {
  driver = %s
  args = %s
}
userdb {
  driver = passwd
  # The issue's uid=vmail gid=vmail; nobody/nogroup exist everywhere.
  override_fields = uid=nobody gid=nogroup home=/var/mail/%%n/
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
`

// checkSystemUser runs the checks of issue 10 for one passdb: doveadm auth
// test and Postfix SMTP AUTH accept the right password and refuse a wrong
// one; doveadm user returns the overrides.
func checkSystemUser(t *testing.T, conf string, u *shadowtest.User) {
	t.Helper()
	p := startAuthd(t, conf, "run/auth-client", nil)
	da := testenv.NewDoveadm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := p.path("run/auth-client")
	for _, c := range []struct {
		pass string
		want int
	}{{u.Password, 0}, {"wrong-" + u.Password, 77}} {
		out, code, err := da.Run(ctx, "auth", "test", "-a", client, u.Name, c.pass)
		if err != nil || code != c.want {
			t.Fatalf("doveadm auth test %s: rc %d %v, want %d\n%s", u.Name, code, err, c.want, out)
		}
	}
	out, code, err := da.Run(ctx, "user", "-a", p.path("run/auth-userdb"), u.Name)
	if err != nil || code != 0 {
		t.Fatalf("doveadm user %s: rc %d %v\n%s", u.Name, code, err, out)
	}
	mustHaveFields(t, out, map[string]string{"uid": "65534", "gid": "65534", "home": "/var/mail/" + u.Name + "/"})
	pf := testenv.StartPostfix(t, client)
	for _, c := range []struct {
		pass string
		want int
	}{{u.Password, 235}, {"wrong-" + u.Password, 535}} {
		code, msg, err := testenv.SMTPAuth(ctx, pf.Addr, "PLAIN", u.Name, c.pass)
		if err != nil || code != c.want {
			t.Fatalf("SMTP AUTH %s: %d %s %v, want %d", u.Name, code, msg, err, c.want)
		}
	}
}

// TestShadowSystemUser: a throwaway local user with a real $y$ hash in
// /etc/shadow logs in through the pure-Go shadow passdb.
func TestShadowSystemUser(t *testing.T) {
	testenv.Require(t, "doveadm", "postfix")
	u := shadowtest.NewUser(t, "Sh4dow-pw")
	if h := u.Hash(t); !strings.HasPrefix(h, "$y$") {
		t.Logf("note: chpasswd wrote %.4s…, not yescrypt", h)
	}
	conf := strings.Replace(sysUsersConf, "  args = %s\n", "", 1)
	checkSystemUser(t, fmt.Sprintf(conf, "shadow"), u)
}
