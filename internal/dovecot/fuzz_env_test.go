package dovecot_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/sasl"
)

// The whole-connection fuzz harnesses (FuzzClientSession,
// FuzzMasterSession) share this environment: an engine over passwd-files
// with the brute-force defence and the auth cache on, a frozen clock and
// no failure delay, so that every execution takes milliseconds (Go's
// fuzzer reports any input that takes over 10 s as a hang), and
// connections over net.Pipe with short deadlines.

// The secrets. alice's and the master user's passwords are 32 arbitrary
// bytes that no seed for a failing case contains and a mutation cannot
// find by chance: an OK for either account proves the input carried the
// password. carol's password is public: the harness logs her in itself.
const (
	fuzzAlice      = "alice@example.com"
	fuzzAlicePass  = "Zq8#tW2v!Lp5$Rx9&Mb4*Kd7^Hs3+Nf6"
	fuzzCarol      = "carol@example.com"
	fuzzCarolPass  = "carol-public"
	fuzzMaster     = "master@example.com"
	fuzzMasterPass = "Vy1@Cg6(Jn0=Qe5~Tu8?Wa3-Xo7;Bi2)"
	fuzzAnonymous  = "anonymous"
)

// fuzzPasswords maps each account to the password that proves it; the
// master password proves every account (a master login).
var fuzzPasswords = map[string]string{fuzzAlice: fuzzAlicePass, fuzzCarol: fuzzCarolPass}

const fuzzUsers = fuzzAlice + ":{PLAIN}" + fuzzAlicePass + ":1000:1000::/home/alice::userdb_mail=maildir:~/Maildir\n" +
	fuzzCarol + ":{PLAIN}" + fuzzCarolPass + ":1001:1001::/home/carol::\n"

// fuzzMechs are the mechanisms the client harness offers: every one authd
// implements. EXTERNAL never succeeds here (no username from the
// certificate, and every account has a password); ANONYMOUS succeeds
// without a password, as the oracle allows for that user only.
var fuzzMechs = []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256",
	"APOP", "ANONYMOUS", "EXTERNAL", "OAUTHBEARER", "XOAUTH2"}

// fuzzDBs are the passwd-files, read once per process: the passdb's path
// holds %d, which makes its answers cacheable, so the auth cache is part
// of what the fuzzer drives; the userdb's path is fixed, which makes it
// listable (LIST).
type fuzzDBs struct {
	passdb, userdb, masters *passwdfile.DB
}

func newFuzzDBs(tb testing.TB) *fuzzDBs {
	tb.Helper()
	dir := tb.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	write("example.com/users", fuzzUsers)
	open := func(args string) *passwdfile.DB {
		db, err := passwdfile.New(args, nil)
		if err != nil {
			tb.Fatal(err)
		}
		return db
	}
	return &fuzzDBs{
		passdb:  open(filepath.Join(dir, "%d", "users")),
		userdb:  open(write("userdb", fuzzUsers)),
		masters: open(write("masters", fuzzMaster+":{PLAIN}"+fuzzMasterPass+"::::::\n")),
	}
}

// fuzzEnv is one execution's server state: nothing survives from one
// input to the next.
type fuzzEnv struct {
	eng    *engine.Engine
	lim    *limiter.Limiter
	cache  *cache.Cache
	shared *dovecot.Shared
}

var fuzzClock = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (d *fuzzDBs) newEnv(t *testing.T) *fuzzEnv {
	t.Helper()
	rules := func(s engine.DBSpec) engine.DBSpec {
		s.ResultSuccess, s.ResultFailure, s.ResultInternalfail = config.RuleReturnOK, config.RuleContinue, config.RuleContinue
		return s
	}
	eng, err := engine.New(engine.Settings{
		DefaultRealm: "example.com", MasterUserSeparator: "*", AnonymousUsername: fuzzAnonymous,
		UsernameChars: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@",
	}, []engine.DBSpec{
		rules(engine.DBSpec{Driver: "passwd-file", Passdb: d.masters, Master: true, Pass: true}),
		rules(engine.DBSpec{Driver: "passwd-file", Passdb: d.passdb}),
	}, []engine.DBSpec{
		rules(engine.DBSpec{Driver: "passwd-file", Userdb: d.userdb}),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	frozen := func() time.Time { return fuzzClock }
	env := &fuzzEnv{
		eng: eng,
		// The account budget is out of the inputs' reach, so that the
		// check after the fuzzed connection is never refused; the
		// address budgets keep their defaults and are reachable.
		lim:    limiter.New(limiter.Config{Account: limiter.Budget{Failures: 1 << 20, Window: time.Hour}, MaxKeys: 4096, Now: frozen}),
		cache:  cache.New(cache.Options{MaxBytes: 1 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true, Now: frozen}),
		shared: dovecot.NewShared(4242),
	}
	eng.SetLimiter(env.lim)
	eng.SetCache(env.cache)
	return env
}

// clientServer builds a login socket's server (failure delay 0) and starts
// its delay queue; stop shuts it down and reports what it left running.
// A test that fails before calling stop has it called by its cleanup.
func (e *fuzzEnv) clientServer(t *testing.T) (srv *dovecot.ClientServer, stop func()) {
	t.Helper()
	var defs []sasl.Def
	for _, m := range fuzzMechs {
		defs = append(defs, sasl.Defs[m])
	}
	srv = dovecot.NewClientServer(dovecot.ClientConfig{Engine: e.eng, Mechs: defs, Login: true, Shared: e.shared})
	ctx, cancel := context.WithCancel(context.Background())
	var run sync.WaitGroup
	run.Go(func() { srv.Run(ctx) })
	stop = sync.OnceFunc(func() {
		defer run.Wait()
		defer cancel()
		shutdown(t, "client", srv.Shutdown)
		if n := srv.DelayedFailures(); n != 0 {
			t.Errorf("%d failures still waiting after shutdown", n)
		}
	})
	t.Cleanup(stop)
	return srv, stop
}

// masterServer builds a master-protocol server; stop is as clientServer's.
func (e *fuzzEnv) masterServer(t *testing.T, cfg dovecot.MasterConfig) (srv *dovecot.MasterServer, stop func()) {
	t.Helper()
	cfg.Engine, cfg.Cache, cfg.Penalty, cfg.Shared = e.eng, e.cache, e.lim, e.shared
	srv = dovecot.NewMasterServer(cfg)
	stop = sync.OnceFunc(func() { shutdown(t, "master", srv.Shutdown) })
	t.Cleanup(stop)
	return srv, stop
}

// shutdown stops a server, which must finish its requests in time.
func shutdown(t *testing.T, what string, f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		t.Errorf("%s server shutdown: %v", what, err)
	}
}

// fuzzTimeout bounds every wait. A healthy server answers within
// milliseconds, but a machine running other tests can starve the fuzzing
// workers for a second or more (2 s was seen to run out, with a load of 14
// on 2 cores); a wait that runs out still fails the execution before Go's
// 10 s hang limit, with a message that says what the server did not do.
const fuzzTimeout = 5 * time.Second

// pipeConn is the client end of one in-memory connection: every line the
// server wrote is kept, in order, for the oracles.
type pipeConn struct {
	nc   net.Conn
	sent []string

	mu     sync.Mutex
	got    []string
	eof    bool
	notify chan struct{}
	done   chan struct{}
}

// connect serves a new in-memory connection with serve on its own
// goroutine, which wg tracks. The test's cleanup closes the client end,
// which ends both that goroutine and the reader.
func connect(t *testing.T, wg *sync.WaitGroup, serve func(net.Conn)) *pipeConn {
	cli, srv := net.Pipe()
	wg.Go(func() { serve(srv) })
	c := &pipeConn{nc: cli, notify: make(chan struct{}, 1), done: make(chan struct{})}
	go c.readAll()
	t.Cleanup(func() {
		_ = cli.Close()
		<-c.done
	})
	return c
}

// readAll collects the server's lines until the connection ends. It stops
// when the server closes the connection or when close is called.
func (c *pipeConn) readAll() {
	defer close(c.done)
	r := bufio.NewReader(c.nc)
	for {
		line, err := r.ReadString('\n')
		c.mu.Lock()
		if err == nil {
			c.got = append(c.got, strings.TrimSuffix(line, "\n"))
		} else {
			if line != "" {
				c.got = append(c.got, "<unterminated>"+line)
			}
			c.eof = true
		}
		c.mu.Unlock()
		select {
		case c.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// send writes lines; false once the server has closed the connection.
// Every line counts as sent for the oracles, even one the server never
// read: they only use the sent lines to allow behaviour.
func (c *pipeConn) send(t *testing.T, lines ...string) bool {
	t.Helper()
	for _, l := range lines {
		c.sent = append(c.sent, l)
		_ = c.nc.SetWriteDeadline(time.Now().Add(fuzzTimeout))
		if _, err := io.WriteString(c.nc, l+"\n"); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server stopped reading: %q not read in %v", l, fuzzTimeout)
			}
			return false
		}
	}
	return true
}

// waitFor returns the first line from index from on that matches, or
// fails the test when none comes in time. ok is false when the server
// closed the connection first.
func (c *pipeConn) waitFor(t *testing.T, from int, what string, match func(string) bool) (line string, ok bool) {
	t.Helper()
	deadline := time.NewTimer(fuzzTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for ; from < len(c.got); from++ {
			if match(c.got[from]) {
				l := c.got[from]
				c.mu.Unlock()
				return l, true
			}
		}
		eof := c.eof
		c.mu.Unlock()
		if eof {
			return "", false
		}
		select {
		case <-c.notify:
		case <-deadline.C:
			t.Fatalf("no %s from the server in %v; it sent %q", what, fuzzTimeout, c.lines())
		}
	}
}

// mustWait is waitFor where the connection must stay open.
func (c *pipeConn) mustWait(t *testing.T, from int, what string, match func(string) bool) string {
	t.Helper()
	l, ok := c.waitFor(t, from, what, match)
	if !ok {
		t.Fatalf("the server closed the connection before %s; it sent %q", what, c.lines())
	}
	return l
}

func (c *pipeConn) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func (c *pipeConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// finish waits until the server has closed the connection (after its
// Shutdown) and returns everything it sent.
func (c *pipeConn) finish(t *testing.T) []string {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(fuzzTimeout):
		t.Fatalf("the connection stayed open after the server's shutdown")
	}
	_ = c.nc.Close()
	return c.lines()
}

func prefixed(p string) func(string) bool {
	return func(l string) bool { return strings.HasPrefix(l, p) }
}

// fuzzLines splits a fuzz input into the lines to send. Inputs are capped
// (64 lines, 32 KiB) so that an execution stays in milliseconds; the
// protocol limits themselves (16 KiB client lines, 1 KiB master lines)
// are within reach.
func fuzzLines(input string) []string {
	if len(input) > 32<<10 {
		input = input[:32<<10]
	}
	input = strings.TrimSuffix(input, "\n")
	lines := strings.Split(input, "\n")
	if len(lines) > 64 {
		lines = lines[:64]
	}
	return lines
}

// unusedNumber is the first number from n on whose decimal form does not
// occur in input: an id or CPID the input cannot collide with.
func unusedNumber(input string, n uint32) uint32 {
	for strings.Contains(input, strconv.FormatUint(uint64(n), 10)) {
		n++
	}
	return n
}

// fields splits a line the way the server does: without the CR Dovecot's
// reader tolerates, at TABs, unescaped.
func fields(line string) []string {
	return dovecot.SplitLine(strings.TrimSuffix(line, "\r"))
}

// parseID is the protocol's id syntax (docs/protocol.md §1.3), restated:
// a decimal uint32 without sign or spaces.
func parseID(s string) (uint32, bool) {
	if s == "" || len(s) > 10 || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// secretSeen reports whether secret occurs in what the lines carry, in
// any form the server could have read it from: the raw line, each field
// unescaped, the value after a parameter's "=", and each of those
// decoded as base64 (Dovecot's strict decoder and the lenient ones). A
// mechanism's password is always a part of one decoded payload, so an
// input for which this is false cannot have proven the password.
func secretSeen(lines []string, secret string) bool {
	s := []byte(secret)
	for _, l := range lines {
		if strings.Contains(l, secret) {
			return true
		}
		for _, f := range fields(l) {
			cands := []string{f}
			if _, v, ok := strings.Cut(f, "="); ok {
				cands = append(cands, v)
			}
			for _, c := range cands {
				if strings.Contains(c, secret) {
					return true
				}
				if d, err := dovecot.DecodeBase64(c); err == nil && bytes.Contains(d, s) {
					return true
				}
				for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding} {
					if d, err := enc.DecodeString(c); err == nil && bytes.Contains(d, s) {
						return true
					}
				}
			}
		}
	}
	return false
}

func b64(s string) string { return dovecot.EncodeBase64([]byte(s)) }
