package dovecot_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
)

// The users every transcript runs against. bob's bcrypt cost 10 makes his
// verification slow enough (~60 ms, much more under -race) that a later PLAIN request overtakes
// it, which the pipelining transcript relies on.
const testUsers = `alice@example.com:{PLAIN}secret:1000:1000::/home/alice::userdb_mail=maildir:~/Maildir
bob@example.com:{BLF-CRYPT}$2y$10$YrEEsPU2wdQR7786onC/6eNyjlnbAqX4y9LNIF8hFVzMcvq3jFjtK:1001:1001::/home/bob::
nl@example.com:{PLAIN}secret::::::nologin reason=Go_away
px@example.com:{PLAIN}secret::::::proxy host=10.0.0.5 port=143 nodelay
nd@example.com:{PLAIN}secret::::::nodelay
bad@example.com:{SSHA}!!notbase64!!
`

type testEnv struct {
	dir    string
	shared *dovecot.Shared
	eng    *engine.Engine
	// withDelay builds the same engine with auth_failure_delay = d.
	withDelay func(d time.Duration) *engine.Engine
}

func newTestEnv(t *testing.T, set engine.Settings) *testEnv {
	t.Helper()
	return newTestEnvUsers(t, set, testUsers)
}

// newTestEnvUsers is newTestEnv with a passwd-file of its own.
func newTestEnvUsers(t *testing.T, set engine.Settings, usersFile string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(usersFile), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := passwdfile.New("scheme=PLAIN "+users, nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, _ := vars.ParseFields("")
	build := func(delay time.Duration) *engine.Engine {
		set := set
		set.FailureDelay = delay
		eng, err := engine.New(set, []engine.DBSpec{{
			Driver: "passwd-file", Passdb: db, DefaultFields: tmpl,
			ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue,
		}}, []engine.DBSpec{{
			Driver: "passwd-file", Userdb: db,
			ResultSuccess: config.RuleReturnOK, ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue,
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	return &testEnv{dir: dir, shared: dovecot.NewShared(4242), eng: build(set.FailureDelay), withDelay: build}
}

// startClient serves the client protocol on a unix socket and returns its
// path. The server is shut down when the test ends.
func (e *testEnv) startClient(t *testing.T, login bool, delay time.Duration, mechs ...string) string {
	return e.startClientCfg(t, login, delay, false, mechs...)
}

func (e *testEnv) startClientCfg(t *testing.T, login bool, delay time.Duration, requireCert bool, mechs ...string) string {
	t.Helper()
	if len(mechs) == 0 {
		mechs = []string{"PLAIN", "LOGIN"}
	}
	var defs []sasl.Def
	for _, m := range mechs {
		defs = append(defs, sasl.Defs[m])
	}
	eng := e.eng
	if delay > 0 {
		eng = e.withDelay(delay)
	}
	srv := dovecot.NewClientServer(dovecot.ClientConfig{
		Engine: eng, Mechs: defs, Login: login, FailureDelay: delay, Shared: e.shared,
		SSLRequireClientCert: requireCert,
	})
	name := "auth-client"
	if login {
		name = "auth-login"
	}
	return testenv.ServeUnix(t, filepath.Join(e.dir, name), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
}

// startMaster serves the master protocol (full: auth-master, else
// auth-userdb) on a unix socket.
func (e *testEnv) startMaster(t *testing.T, full bool) string {
	t.Helper()
	srv := dovecot.NewMasterServer(dovecot.MasterConfig{Engine: e.eng, Full: full, Shared: e.shared})
	name := "auth-userdb"
	if full {
		name = "auth-master"
	}
	return testenv.ServeUnix(t, filepath.Join(e.dir, name), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown})
}

// conn is a raw protocol connection for transcripts.
type conn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dial(t *testing.T, path string) *conn {
	t.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &conn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *conn) send(line string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(line + "\n")); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// readLine returns the next line, or "<closed>" on EOF/reset.
// replyWait bounds the wait for a reply a transcript expects: only a guard
// against a hang, so generous: a bcrypt cost-10 verification (and the
// equal-cost dummy of a failure) takes seconds under the race detector on
// a loaded 2-core machine.
const replyWait = 30 * time.Second

func (c *conn) readLine(timeout time.Duration) string {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	line, err := c.r.ReadString('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "<timeout>"
		}
		if errors.Is(err, io.EOF) || strings.Contains(err.Error(), "reset") {
			return "<closed>"
		}
		c.t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(line, "\n")
}

var (
	reCookie = regexp.MustCompile(`^COOKIE\t[0-9a-f]{32}$`)
	reCUID   = regexp.MustCompile(`^CUID\t[0-9]+$`)
)

// normalize replaces per-connection random values by placeholders.
func normalize(line string) string {
	switch {
	case reCookie.MatchString(line):
		return "COOKIE\t<cookie>"
	case reCUID.MatchString(line):
		return "CUID\t<cuid>"
	}
	return line
}

// runTranscript plays a transcript file: "C: line" is sent, "S: line" must
// be the next server line, "S*: a | b" are lines that may come in any
// order, "S: <closed>" expects the connection to close, "C+: N" sends a
// line of N bytes. \t stands for TAB and \x01 for byte 1.
func runTranscript(t *testing.T, path, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, path)
	for n, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimRight(raw, " ")
		if raw == "" || strings.HasPrefix(raw, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", filepath.Base(file), n+1)
		kind, text, ok := strings.Cut(raw, ": ")
		if !ok {
			kind, text = strings.TrimSuffix(raw, ":"), ""
		}
		text = unquote(text)
		switch kind {
		case "C":
			c.send(text)
		case "C+":
			var size int
			fmt.Sscanf(text, "%d", &size)
			line := "AUTH\t1\tPLAIN\tservice=imap\tx=" + strings.Repeat("a", size)
			if strings.Contains(file, "master-") || strings.Contains(file, "userdb-") {
				line = "USER\t1\talice@example.com\tservice=imap\tx=" + strings.Repeat("a", size)
			}
			c.send(line[:size-1])
		case "S":
			got := normalize(c.readLine(replyWait))
			if got != text {
				t.Fatalf("%s: got %q, want %q", where, got, text)
			}
		case "S*":
			want := strings.Split(text, " | ")
			var got []string
			for range want {
				got = append(got, normalize(c.readLine(replyWait)))
			}
			slices.Sort(want)
			sorted := slices.Clone(got)
			slices.Sort(sorted)
			if !slices.Equal(sorted, want) {
				t.Fatalf("%s: got %q, want (any order) %q", where, got, want)
			}
		case "S-":
			// nothing arrives within the given time (or 300 ms)
			d := 300 * time.Millisecond
			if text != "" {
				d, _ = time.ParseDuration(text)
			}
			if got := c.readLine(d); got != "<timeout>" {
				t.Fatalf("%s: got %q, want nothing", where, got)
			}
		default:
			t.Fatalf("%s: bad transcript line %q", where, raw)
		}
	}
}

func unquote(s string) string {
	s = strings.ReplaceAll(s, `\t`, "\t")
	s = strings.ReplaceAll(s, `\x01`, "\x01")
	return s
}

// TestTranscripts runs every testdata/transcripts/*.txt against a client
// socket (names starting with login- use a login socket).
func TestTranscripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/transcripts/*.txt")
	if len(files) == 0 {
		t.Fatal("no transcripts")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			env := newTestEnv(t, engine.Settings{DefaultRealm: "example.com", UsernameChars: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"})
			base := filepath.Base(f)
			delay := time.Duration(0)
			if strings.HasPrefix(base, "delay-") {
				delay = 400 * time.Millisecond
			}
			var path string
			switch {
			case strings.HasPrefix(base, "master-"):
				path = env.startMaster(t, true)
			case strings.HasPrefix(base, "userdb-"):
				path = env.startMaster(t, false)
			case strings.HasPrefix(base, "certreq-"):
				path = env.startClientCfg(t, false, delay, true)
			default:
				path = env.startClient(t, strings.HasPrefix(base, "login-"), delay)
			}
			runTranscript(t, path, f)
		})
	}
}

// TestFailureDelay: a failure's FAIL is held for auth_failure_delay without
// holding up other requests on the connection; nodelay skips the delay.
func TestFailureDelay(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	const delay = 600 * time.Millisecond
	path := env.startClient(t, false, delay)
	c := dial(t, path)
	for range 7 {
		c.readLine(time.Second) // handshake
	}
	c.send("VERSION\t1\t2")
	c.send("CPID\t1")
	start := time.Now()
	c.send("AUTH\t1\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n")                            // wrong password
	c.send("AUTH\t2\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")                        // right
	c.send("AUTH\t3\tPLAIN\tservice=imap\tresp=" + dovecot.EncodeBase64([]byte("\x00nd@example.com\x00no"))) // nodelay user, wrong
	// The success must not wait behind the delayed failure, and nodelay
	// skips the delay; these two may come in either order.
	got := []string{c.readLine(time.Second), c.readLine(time.Second)}
	slices.Sort(got)
	if want := []string{"FAIL\t3\tuser=nd@example.com\tnodelay", "OK\t2\tuser=alice@example.com"}; !slices.Equal(got, want) {
		t.Fatalf("undelayed replies %q, want %q", got, want)
	}
	if time.Since(start) >= delay {
		t.Fatalf("undelayed replies took %v", time.Since(start))
	}
	if got := c.readLine(3 * time.Second); got != "FAIL\t1\tuser=alice@example.com" {
		t.Fatalf("delayed reply %q", got)
	}
	if el := time.Since(start); el < delay {
		t.Fatalf("FAIL came after %v, before the %v delay", el, delay)
	}
}

// TestLoginSocketDuplicateCPID: a login socket refuses a CPID that a live
// connection already announced; a client socket does not care.
func TestLoginSocketDuplicateCPID(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	for _, login := range []bool{true, false} {
		path := env.startClient(t, login, 0)
		a, b := dial(t, path), dial(t, path)
		for _, c := range []*conn{a, b} {
			for range 7 {
				c.readLine(time.Second)
			}
		}
		// a registers its CPID first: a round trip proves the server has it.
		a.send("VERSION\t1\t2")
		a.send("CPID\t777")
		a.send("AUTH\t1\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
		if got := a.readLine(time.Second); got != "OK\t1\tuser=alice@example.com" {
			t.Fatalf("login=%v first connection: %q", login, got)
		}
		b.send("VERSION\t1\t2")
		b.send("CPID\t777")
		// The write may already fail on a closed login connection.
		_, _ = b.nc.Write([]byte("AUTH\t1\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\n"))
		got := b.readLine(time.Second)
		if login && got != "<closed>" {
			t.Fatalf("login socket accepted a duplicate CPID: %q", got)
		}
		if !login && got != "OK\t1\tuser=alice@example.com" {
			t.Fatalf("client socket: %q", got)
		}
		a.nc.Close()
		b.nc.Close()
		env.dir = t.TempDir()
	}
}

// TestLoginRequestFlow: a login socket keeps successful requests until the
// master socket's REQUEST claims them, once, with the right cookie
// (docs/protocol.md §2.4.4).
func TestLoginRequestFlow(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	login := env.startClient(t, true, 0)
	master := env.startMaster(t, true)
	lc := dial(t, login)
	var cookie string
	for range 7 {
		line := lc.readLine(time.Second)
		if c, ok := strings.CutPrefix(line, "COOKIE\t"); ok {
			cookie = c
		}
	}
	lc.send("VERSION\t1\t2")
	lc.send("CPID\t4711")
	lc.send("AUTH\t5\tPLAIN\tservice=imap\tsession=abc\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
	lc.send("AUTH\t6\tPLAIN\tservice=imap\tresp=" + dovecot.EncodeBase64([]byte("\x00nl@example.com\x00secret")))
	lc.send("AUTH\t7\tPLAIN\tservice=imap\tresp=" + dovecot.EncodeBase64([]byte("\x00px@example.com\x00secret")))
	got := []string{lc.readLine(time.Second), lc.readLine(time.Second), lc.readLine(time.Second)}
	slices.Sort(got)
	want := []string{
		"OK\t5\tuser=alice@example.com",
		"OK\t6\tuser=nl@example.com\tnologin\treason=Go_away",
		// login sockets add the typed password to proxy replies
		"OK\t7\tuser=px@example.com\tproxy\thost=10.0.0.5\tport=143\tnodelay\tpass=secret",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("login replies %q, want %q", got, want)
	}
	mc := dial(t, master)
	mc.readLine(time.Second)
	mc.readLine(time.Second)
	mc.send("VERSION\t1\t1")
	// A wrong cookie, an unknown CPID, a nologin or proxy request: FAIL.
	mc.send("REQUEST\t1\t4711\t5\t00000000000000000000000000000000")
	if got := mc.readLine(time.Second); got != "FAIL\t1" {
		t.Fatalf("wrong cookie: %q", got)
	}
	mc.send("REQUEST\t2\t4712\t5\t" + cookie)
	if got := mc.readLine(time.Second); got != "FAIL\t2" {
		t.Fatalf("unknown cpid: %q", got)
	}
	mc.send("REQUEST\t3\t4711\t6\t" + cookie)
	if got := mc.readLine(time.Second); got != "FAIL\t3" {
		t.Fatalf("nologin request: %q", got)
	}
	mc.send("REQUEST\t4\t4711\t7\t" + cookie)
	if got := mc.readLine(time.Second); got != "FAIL\t4" {
		t.Fatalf("proxy request: %q", got)
	}
	// session_pid must be the peer's pid (SO_PEERCRED): ours.
	mc.send(fmt.Sprintf("REQUEST\t5\t4711\t5\t%s\tsession_pid=%d", cookie, os.Getpid()+1))
	if got := mc.readLine(time.Second); got != "FAIL\t5" {
		t.Fatalf("foreign session_pid: %q", got)
	}
	mc.send(fmt.Sprintf("REQUEST\t6\t4711\t5\t%s\tsession_pid=%d\trequest_auth_token", cookie, os.Getpid()))
	got1 := mc.readLine(time.Second)
	re := regexp.MustCompile(`^USER\t6\talice@example.com\tuid=1000\tgid=1000\thome=/home/alice\tmail=maildir:~/Maildir\tauth_mech=PLAIN\tauth_token=[0-9a-f]{40}$`)
	if !re.MatchString(got1) {
		t.Fatalf("REQUEST reply %q", got1)
	}
	// Claimed once.
	mc.send("REQUEST\t7\t4711\t5\t" + cookie)
	if got := mc.readLine(time.Second); got != "FAIL\t7" {
		t.Fatalf("second claim: %q", got)
	}
}

// TestLoginRequestKeepsInfo: the request a login socket keeps for REQUEST
// still holds what its AUTH said when the master claims it, after the
// connection has served other requests meanwhile (a request's memory is
// reused only when nothing holds it).
func TestLoginRequestKeepsInfo(t *testing.T) {
	env := newTestEnvUsers(t, engine.Settings{}, "carol@example.com:{PLAIN}secret:1000:1000::/home/carol::userdb_x_service=%s userdb_x_rip=%r userdb_x_session=%{session}\n")
	login := env.startClient(t, true, 0)
	master := env.startMaster(t, true)
	lc := dial(t, login)
	var cookie string
	for range 7 {
		if c, ok := strings.CutPrefix(lc.readLine(time.Second), "COOKIE\t"); ok {
			cookie = c
		}
	}
	lc.send("VERSION\t1\t2")
	lc.send("CPID\t4711")
	resp := dovecot.EncodeBase64([]byte("\x00carol@example.com\x00secret"))
	lc.send("AUTH\t1\tPLAIN\tservice=imap\tlip=192.0.2.1\trip=192.0.2.9\tsession=abc\tresp=" + resp)
	if got, want := lc.readLine(time.Second), "OK\t1\tuser=carol@example.com"; got != want {
		t.Fatalf("first login: %q, want %q", got, want)
	}
	for id := 2; id <= 20; id++ {
		lc.send(fmt.Sprintf("AUTH\t%d\tPLAIN\tservice=pop3\tnologin\tresp=%s", id, dovecot.EncodeBase64([]byte("\x00nobody@example.com\x00x"))))
		if got := lc.readLine(time.Second); !strings.HasPrefix(got, fmt.Sprintf("FAIL\t%d\t", id)) {
			t.Fatalf("login %d: %q", id, got)
		}
	}
	mc := dial(t, master)
	mc.readLine(time.Second)
	mc.readLine(time.Second)
	mc.send("VERSION\t1\t1")
	mc.send(fmt.Sprintf("REQUEST\t1\t4711\t1\t%s\tsession_pid=%d", cookie, os.Getpid()))
	want := "USER\t1\tcarol@example.com\tuid=1000\tgid=1000\thome=/home/carol\tx_service=imap\tx_rip=192.0.2.9\tx_session=abc\tauth_mech=PLAIN"
	if got := mc.readLine(time.Second); got != want {
		t.Fatalf("REQUEST reply\n%q, want\n%q", got, want)
	}
}
