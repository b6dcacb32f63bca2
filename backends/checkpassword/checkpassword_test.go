package checkpassword

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// TestMain makes the test binary the reply program too: a checkpassword
// program runs "<test binary> checkpassword-reply" as authd's would run
// "authd checkpassword-reply".
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == ReplyCommand {
		fd4 := os.NewFile(4, "fd4")
		os.Exit(Reply(ReplyEnv{Getenv: os.LookupEnv, UID: os.Getuid(), EUID: os.Geteuid(), GID: os.Getgid(), EGID: os.Getegid()}, fd4, os.Stderr))
	}
	goleak.VerifyTestMain(m)
}

// script is a checkpassword program in sh: it reads fd 3, looks the user
// up in users.tab beside it (name, password, stored password, uid, gid,
// home, extra userdb_mail), and answers with the reply program given as
// its arguments. Special users test the driver's limits.
const script = `#!/bin/sh
dir=$(dirname "$0")
raw="$dir/raw.$$"
head -c 600 <&3 > "$raw"
input=$(tr '\0' '\n' < "$raw")
user=$(printf '%s\n' "$input" | sed -n 1p)
pass=$(printf '%s\n' "$input" | sed -n 2p)
[ "$user" = envdump@example.com ] && cp "$raw" "$dir/raw.keep"
rm -f "$raw"
case "$user" in
envdump@example.com) env > "$dir/env.out"; tr '\0' '|' < "$dir/raw.keep" > "$dir/input.out" ;;
sleep@example.com) sleep 300 & echo $! > "$dir/grandchild.pid"; echo $$ > "$dir/child.pid"; sleep 300 ;;
count@example.com)
  touch "$dir/running/$$"; n=$(ls "$dir/running" | wc -l)
  echo "$n" >> "$dir/counts"; sleep 0.2; rm -f "$dir/running/$$"; exit 1 ;;
crash@example.com) kill -9 $$ ;;
status111@example.com) exit 111 ;;
status2@example.com) exit 2 ;;
silent@example.com) exit 0 ;;
newline@example.com) printf 'user=x\nuserdb_uid=1\t' >&4; exit 0 ;;
stderr@example.com) echo "complaint from the script" >&2; exit 1 ;;
esac
line=$(U="$user" awk -F'\t' '$1 == ENVIRON["U"] { print; exit }' "$dir/users.tab")
if [ -z "$line" ]; then
  [ -n "$AUTHORIZED" ] && exit 3
  exit 1
fi
field() { printf '%s\n' "$line" | cut -f "$1"; }
if [ -z "$AUTHORIZED" ]; then
  [ "$pass" = "$(field 2)" ] || exit 1
else
  AUTHORIZED=2; export AUTHORIZED
fi
USER=$user HOME=$(field 6) password=$(field 3) userdb_uid=$(field 4) userdb_gid=$(field 5)
export USER HOME password userdb_uid userdb_gid
EXTRA="password userdb_uid userdb_gid"
mail=$(field 7)
if [ -n "$mail" ]; then userdb_mail=$mail; export userdb_mail; EXTRA="$EXTRA userdb_mail"; fi
export EXTRA
exec "$@"
`

// setup writes the script and its users and returns the script's path.
func setup(t *testing.T) string {
	t.Helper()
	testenv.Require(t, "sh", "awk", "sed", "cut", "tr", "head")
	dir := t.TempDir()
	var tab strings.Builder
	for _, u := range conformance.Users {
		fmt.Fprintf(&tab, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.Name, u.Plain, u.Password, u.UID, u.GID, u.Home, u.Extra["userdb_mail"])
	}
	if err := os.WriteFile(filepath.Join(dir, "users.tab"), []byte(tab.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "running"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "checkpassword.sh")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func newDB(t *testing.T, args string) *DB {
	t.Helper()
	db, err := New(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.reply = []string{testBinary(t), ReplyCommand}
	t.Cleanup(func() { db.Close() })
	return db
}

func testBinary(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestConformance(t *testing.T) {
	db := newDB(t, setup(t))
	t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, db) })
	t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, db) })
}

func TestVerifyPass(t *testing.T) {
	db := newDB(t, setup(t))
	ctx := context.Background()
	for _, u := range conformance.Users {
		ans, err := db.VerifyPass(ctx, conformance.Request(u.Name), []byte(u.Plain))
		if err != nil || ans.Outcome != backends.Found {
			t.Errorf("%s: %v %v, want found", u.Name, ans.Outcome, err)
			continue
		}
		if got, _ := ans.Fields.Get("user"); got != u.Name {
			t.Errorf("%s: user=%q", u.Name, got)
		}
		if got, _ := ans.Fields.Get("userdb_home"); got != u.Home {
			t.Errorf("%s: userdb_home=%q (fields %s)", u.Name, got, ans.Fields)
		}
		if ans.HasPassword || ans.Fields.Has("password") {
			t.Errorf("%s: a password check returned a stored password", u.Name)
		}
		if ans, err := db.VerifyPass(ctx, conformance.Request(u.Name), []byte(u.Plain+"x")); err != nil || ans.Outcome != backends.Mismatch {
			t.Errorf("%s wrong password: %v %v, want mismatch", u.Name, ans.Outcome, err)
		}
	}
	for _, name := range append([]string{"nosuch@example.com", "alice@example.com\x00"}, conformance.Hostile...) {
		if ans, err := db.VerifyPass(ctx, conformance.Request(name), []byte("secret")); err != nil || ans.Outcome != backends.Mismatch {
			t.Errorf("%q: %v %v, want mismatch", name, ans.Outcome, err)
		}
	}
	long := strings.Repeat("x", maxRequest)
	if ans, err := db.VerifyPass(ctx, conformance.Request("alice@example.com"), []byte(long)); err != nil || ans.Outcome != backends.Mismatch {
		t.Errorf("over-long password: %v %v, want mismatch without running", ans.Outcome, err)
	}
}

// TestExitStatuses: anything but the documented statuses is "could not
// tell", as are a reply with LF, a success without a reply and a child
// killed by a signal.
func TestExitStatuses(t *testing.T) {
	db := newDB(t, setup(t))
	for _, u := range []string{"status111@example.com", "status2@example.com", "silent@example.com", "newline@example.com", "crash@example.com"} {
		if ans, err := db.VerifyPass(context.Background(), conformance.Request(u), []byte("pw")); err == nil {
			t.Errorf("%s: %v, want an error", u, ans.Outcome)
		}
		if ans, err := db.LookupUser(context.Background(), conformance.Request(u)); err == nil {
			t.Errorf("%s lookup: %v, want an error", u, ans.Outcome)
		}
	}
}

// TestEnvironment checks what the program receives: the fd 3 bytes and
// Dovecot's environment, without authd's own.
func TestEnvironment(t *testing.T) {
	path := setup(t)
	db := newDB(t, path)
	t.Setenv("AUTHD_TEST_SECRET", "must-not-leak")
	pf := fields.Fields{{Key: "nologin", Value: "y"}}
	req := &backends.Request{User: "envdump@example.com", Vars: &vars.Context{
		User: "envdump@example.com", Service: "imap", LocalIP: "192.0.2.1", RemoteIP: "192.0.2.10",
		LocalPort: "143", RemotePort: "5555", MasterUser: "admin", Passdb: &pf, Mech: "PLAIN"}}
	if _, err := db.VerifyPass(context.Background(), req, []byte("pw")); err != nil {
		t.Logf("verify: %v", err)
	}
	out, err := os.ReadFile(filepath.Join(filepath.Dir(path), "env.out"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			env[k] = v
		}
	}
	for k, want := range map[string]string{
		"PROTO": "TCP", "ORIG_UID": strconv.Itoa(os.Getuid()), "SERVICE": "imap", "TCPLOCALIP": "192.0.2.1", "LOCAL_IP": "192.0.2.1",
		"TCPREMOTEIP": "192.0.2.10", "REMOTE_IP": "192.0.2.10", "TCPLOCALPORT": "143", "TCPREMOTEPORT": "5555",
		"MASTER_USER": "admin", "NOLOGIN": "y", "AUTH_USER": "envdump@example.com", "AUTH_USERNAME": "envdump",
		"AUTH_DOMAIN": "example.com", "AUTH_SERVICE": "imap", "AUTH_RIP": "192.0.2.10", "AUTH_REMOTE_PORT": "5555",
		"AUTH_MECH": "PLAIN", "AUTH_MASTER_USER": "admin", "AUTH_AUTH_USER": "admin",
	} {
		if env[k] != want {
			t.Errorf("%s=%q, want %q", k, env[k], want)
		}
	}
	for _, k := range []string{"AUTHORIZED", "AUTH_PASSWORD", "AUTHD_TEST_SECRET", "HOME", "USER", "AUTH_HOME", "AUTH_LOGIN_USER"} {
		if v, ok := env[k]; ok {
			t.Errorf("%s=%q should not be set", k, v)
		}
	}
	in, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "input.out"))
	if string(in) != "envdump@example.com|pw||" {
		t.Errorf("fd 3 carried %q", in)
	}
	if _, err := db.LookupUser(context.Background(), req); err != nil {
		t.Logf("lookup: %v", err)
	}
	out, _ = os.ReadFile(filepath.Join(filepath.Dir(path), "env.out"))
	if !strings.Contains(string(out), "\nAUTHORIZED=1\n") && !strings.HasPrefix(string(out), "AUTHORIZED=1\n") {
		t.Errorf("a lookup ran without AUTHORIZED=1:\n%s", out)
	}
}

// TestTimeoutKillsGroup: a program that does not answer is killed with
// everything it started, and the request could not tell.
func TestTimeoutKillsGroup(t *testing.T) {
	path := setup(t)
	db := newDB(t, "timeout=300ms "+path)
	_, err := db.VerifyPass(context.Background(), conformance.Request("sleep@example.com"), []byte("pw"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline", err)
	}
	for _, f := range []string{"child.pid", "grandchild.pid"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), f))
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		waitGone(t, pid)
	}
}

// waitGone waits (bounded) until pid no longer exists or is a zombie
// that its new parent will reap.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 100 {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d survived the timeout", pid)
}

// TestMaxChildren: never more programs at once than max_children.
func TestMaxChildren(t *testing.T) {
	path := setup(t)
	db := newDB(t, "max_children=2 "+path)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ans, err := db.VerifyPass(context.Background(), conformance.Request("count@example.com"), []byte("pw")); err != nil || ans.Outcome != backends.Mismatch {
				t.Errorf("%v %v", ans.Outcome, err)
			}
		}()
	}
	wg.Wait()
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(path), "counts"))
	counts := strings.Fields(string(b))
	if len(counts) != 8 {
		t.Fatalf("%d runs recorded, want 8", len(counts))
	}
	for _, c := range counts {
		if n, _ := strconv.Atoi(c); n < 1 || n > 2 {
			t.Errorf("%d programs ran at once, max_children=2 (counts %v)", n, counts)
		}
	}
	// A request that cannot get a slot within its deadline could not tell.
	db.slots <- struct{}{}
	db.slots <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.VerifyPass(ctx, conformance.Request("alice@example.com"), []byte("secret")); err == nil {
		t.Error("no free slot: want an error")
	}
	<-db.slots
	<-db.slots
}

// TestCloseKillsChildren: Close ends running programs and returns once
// they are reaped; their requests could not tell.
func TestCloseKillsChildren(t *testing.T) {
	path := setup(t)
	db, err := New(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.reply = []string{testBinary(t), ReplyCommand}
	done := make(chan error, 1)
	go func() {
		_, err := db.VerifyPass(context.Background(), conformance.Request("sleep@example.com"), []byte("pw"))
		done <- err
	}()
	pidFile := filepath.Join(filepath.Dir(path), "child.pid")
	for range 200 {
		if _, err := os.Stat(pidFile); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	db.Close()
	if err := <-done; err == nil {
		t.Error("request answered after Close killed its program")
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitGone(t, pid)
}

// TestDovecotReplyProgram runs the same script with Dovecot 2.3's own
// checkpassword-reply: what it writes and how it exits must be read as
// authd's reply program's are.
func TestDovecotReplyProgram(t *testing.T) {
	const reply = "/usr/lib/dovecot/checkpassword-reply"
	if _, err := os.Stat(reply); err != nil {
		if os.Getenv("AUTHD_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("Dovecot's %s: %v", reply, err)
		}
		t.Skipf("Dovecot's %s: %v", reply, err)
	}
	db := newDB(t, "reply="+reply+" "+setup(t))
	t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, db) })
	t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, db) })
	ans, err := db.VerifyPass(context.Background(), conformance.Request("alice@example.com"), []byte("secret"))
	if err != nil || ans.Outcome != backends.Found {
		t.Fatalf("%v %v", ans.Outcome, err)
	}
	if m, _ := ans.Fields.Get("userdb_mail"); m != "maildir:~/Maildir" {
		t.Errorf("userdb_mail=%q (fields %s)", m, ans.Fields)
	}
}

func TestReplyProgram(t *testing.T) {
	env := map[string]string{"ORIG_UID": "1000", "USER": "al\x01ice", "HOME": "/home/a", "EXTRA": "userdb_uid Quota missing", "userdb_uid": "5000", "Quota": "1G"}
	get := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	var out, errs strings.Builder
	code := Reply(ReplyEnv{Getenv: get, UID: 1000, EUID: 1000, GID: 100, EGID: 100}, &out, &errs)
	if code != 0 || out.String() != "user=al\x011ice\tuserdb_home=/home/a\tuserdb_uid=5000\tquota=1G\tuserdb_gid=100\t" {
		t.Errorf("code %d, reply %q (%s)", code, out.String(), errs.String())
	}
	if got := parseReply(out.String()); got.String() != "user=al\x01ice userdb_home=/home/a userdb_uid=5000 quota=1G userdb_gid=100" {
		t.Errorf("parsed %q", got.String())
	}
	// A lone 0x01 at the end of a field is dropped, as Dovecot's reader does.
	if got := parseReply("quota=1G\x01\tuser=a\x01tb\x01"); got.String() != "quota=1G user=a\tb" {
		t.Errorf("trailing 0x01: parsed %q", got.String())
	}
	env["AUTHORIZED"] = "2"
	if code := Reply(ReplyEnv{Getenv: get, UID: 1000, EUID: 1000, GID: 100, EGID: 100}, &out, &errs); code != 2 {
		t.Errorf("AUTHORIZED=2: exit %d, want 2", code)
	}
	env["AUTHORIZED"] = "1"
	if code := Reply(ReplyEnv{Getenv: get, UID: 1000, EUID: 1000, GID: 100, EGID: 100}, &out, &errs); code != 111 {
		t.Errorf("AUTHORIZED=1 (program without lookup support): exit %d, want 111", code)
	}
	delete(env, "AUTHORIZED")
	// The checkpassword program changed the uid and the reply program is
	// not setuid: refuse, unless INSECURE_SETUID.
	if code := Reply(ReplyEnv{Getenv: get, UID: 2000, EUID: 2000, GID: 100, EGID: 100}, &out, &errs); code != 111 {
		t.Errorf("changed uid: exit %d, want 111", code)
	}
	env["INSECURE_SETUID"] = "1"
	if code := Reply(ReplyEnv{Getenv: get, UID: 2000, EUID: 2000, GID: 100, EGID: 100}, &out, &errs); code != 0 {
		t.Errorf("changed uid with INSECURE_SETUID: exit %d, want 0", code)
	}
}

func TestArgs(t *testing.T) {
	for _, bad := range []string{"", "max_children=0 /bin/true", "timeout=soon /bin/true", "frobnicate=1 /bin/true", "max_children=3"} {
		if _, err := New(bad, nil); !errors.Is(err, backends.ErrConfig) {
			t.Errorf("New(%q) = %v, want a configuration error", bad, err)
		}
	}
	db, err := New("max_children=3 timeout=5s /usr/bin/checkpassword %u", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if cap(db.slots) != 3 || db.timeout != 5*time.Second || db.cmd.String() != "/usr/bin/checkpassword %u" {
		t.Errorf("parsed %d %v %q", cap(db.slots), db.timeout, db.cmd.String())
	}
}
