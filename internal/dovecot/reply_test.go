package dovecot_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
)

// userLine is the USER reply for user with home and one extra field.
func userLine(id int, user, extra string) string {
	return fmt.Sprintf("USER\t%d\t%s\tuid=1000\tgid=1000\thome=/home/x\tnote=%s", id, user, extra)
}

// A userdb reply Dovecot 2.3's master clients could not read (over their
// 8192-byte input buffer, LF included) is a temporary failure, counted;
// one that just fits goes out whole.
func TestMasterReplyTooLong(t *testing.T) {
	// The extra field that makes fit@'s USER line exactly 8192 bytes with
	// its LF, and big@'s one byte more.
	fitPad := strings.Repeat("f", 8191-len(userLine(1, "fit@example.com", "")))
	bigPad := strings.Repeat("b", 8192-len(userLine(2, "big@example.com", "")))
	users := "fit@example.com:{PLAIN}secret:1000:1000::/home/x::userdb_note=" + fitPad + "\n" +
		"big@example.com:{PLAIN}secret:1000:1000::/home/x::userdb_note=" + bigPad + "\n"
	env := newTestEnvUsers(t, engine.Settings{}, users)
	c := dial(t, env.startMaster(t, false))
	c.readLine(time.Second)
	c.readLine(time.Second)
	c.send("VERSION\t1\t0")
	c.send("USER\t1\tfit@example.com\tservice=lmtp")
	if got := c.readLine(5 * time.Second); got != userLine(1, "fit@example.com", fitPad) {
		t.Fatalf("a reply of exactly 8192 bytes: got %d bytes %.60q…", len(got)+1, got)
	}
	c.send("USER\t2\tbig@example.com\tservice=lmtp")
	if got := c.readLine(5 * time.Second); got != "FAIL\t2" {
		t.Fatalf("a reply of 8193 bytes: got %d bytes %.60q…, want FAIL", len(got)+1, got)
	}
	if n := env.shared.Stats.TooLarge.Load(); n != 1 {
		t.Errorf("TooLarge = %d, want 1", n)
	}
	// The connection goes on.
	c.send("USER\t3\tfit@example.com\tservice=lmtp")
	if got := c.readLine(5 * time.Second); !strings.HasPrefix(got, "USER\t3\t") {
		t.Fatalf("after the refused reply: %.60q", got)
	}
}

// The same rule for REQUEST, the userdb step of a login: the login
// process learns "temporary failure", not a line that kills its
// connection to the auth server.
func TestRequestReplyTooLong(t *testing.T) {
	pad := strings.Repeat("b", 8200)
	env := newTestEnvUsers(t, engine.Settings{}, "big@example.com:{PLAIN}secret:1000:1000::/home/x::userdb_note="+pad+"\n")
	login := dial(t, env.startClient(t, true, 0))
	var cookie string
	for {
		line := login.readLine(time.Second)
		if c, ok := strings.CutPrefix(line, "COOKIE\t"); ok {
			cookie = c
		}
		if line == "DONE" {
			break
		}
	}
	login.send("VERSION\t1\t2")
	login.send("CPID\t4711")
	login.send("AUTH\t5\tPLAIN\tservice=imap\tresp=" + dovecot.EncodeBase64([]byte("\x00big@example.com\x00secret")))
	if got := login.readLine(5 * time.Second); got != "OK\t5\tuser=big@example.com" {
		t.Fatalf("login: %q", got)
	}
	mc := dial(t, env.startMaster(t, true))
	mc.readLine(time.Second)
	mc.readLine(time.Second)
	mc.send("VERSION\t1\t1")
	mc.send("REQUEST\t1\t4711\t5\t" + cookie)
	if got := mc.readLine(5 * time.Second); got != "FAIL\t1" {
		t.Fatalf("REQUEST for a user whose userdb reply is too long: %.60q", got)
	}
}

// A userdb's tempfail field sends its reason along on the master socket,
// as Dovecot does; other temporary failures carry none.
func TestMasterTempfailReason(t *testing.T) {
	users := "tf@example.com:{PLAIN}secret:1000:1000::/home/tf::userdb_tempfail userdb_reason=Mailbox_is_moving\n" +
		"bare@example.com:{PLAIN}secret:1000:1000::/home/bare::userdb_tempfail\n" +
		"baduid@example.com:{PLAIN}secret:nosuchuser:1000::/home/b::userdb_reason=ignored\n"
	env := newTestEnvUsers(t, engine.Settings{}, users)
	c := dial(t, env.startMaster(t, false))
	c.readLine(time.Second)
	c.readLine(time.Second)
	c.send("VERSION\t1\t0")
	for id, tc := range []struct{ user, want string }{
		{"tf@example.com", "FAIL\t1\treason=Mailbox_is_moving"},
		{"bare@example.com", "FAIL\t2"},
		{"baduid@example.com", "FAIL\t3"},
	} {
		c.send(fmt.Sprintf("USER\t%d\t%s\tservice=lmtp", id+1, tc.user))
		if got := c.readLine(5 * time.Second); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.user, got, tc.want)
		}
	}
}
