package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// The userdb blocks of the seed setups load and answer doveadm user:
// driver = passwd (system users), passwd-file and static, each with
// override_fields = uid=… gid=… home=/var/mail/%n/.
func TestSeedUserdbSetups(t *testing.T) {
	da := testenv.NewDoveadm(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const override = "override_fields = uid=nobody gid=nogroup home=/var/mail/%n/"
	for _, tc := range []struct {
		name, userdb, user string
	}{
		// root exists on every system; its uid 0 is overridden.
		{"passwd", "driver = passwd\n  " + override, "root"},
		{"passwd-file", "driver = passwd-file\n  args = $DIR/users\n  " + override, "alice@example.com"},
		{"static", "driver = static\n  args = uid=1000 gid=1000 home=/ignored\n  " + override, "alice@example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := `
base_dir = $DIR/run
passdb {
  driver = passwd-file
  args = $DIR/users
}
userdb {
  ` + tc.userdb + `
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
`
			p := startAuthd(t, conf, "run/auth-client", map[string]string{
				"users": "alice@example.com:{PLAIN}pw:1000:1000::/home/alice::\nroot:{PLAIN}pw::::::\n",
			})
			out, code, err := da.Run(ctx, "user", "-a", p.path("run/auth-userdb"), tc.user)
			if err != nil || code != 0 {
				t.Fatalf("doveadm user %s: rc %d %v\n%s", tc.user, code, err, out)
			}
			name := strings.SplitN(tc.user, "@", 2)[0]
			mustHaveFields(t, out, map[string]string{"uid": "65534", "gid": "65534", "home": "/var/mail/" + name + "/"})
			if out, code, _ := da.Run(ctx, "user", "-a", p.path("run/auth-userdb"), "nosuchuser"); code != 67 {
				t.Fatalf("unknown user: rc %d\n%s", code, out)
			}
		})
	}
}
