package dovecot_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
)

// panicEngine panics for one user: a stand-in for a bug deep in a backend.
// A fake is right here: the point is the error path, not a feature.
type panicEngine struct{ dovecot.ClientEngine }

func (p panicEngine) VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, pw []byte) engine.Result {
	if authcid == "boom@example.com" {
		panic("simulated bug")
	}
	return p.ClientEngine.VerifyPlain(ctx, info, authzid, authcid, pw)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func serve(t *testing.T, cfg dovecot.ClientConfig) string {
	t.Helper()
	srv := dovecot.NewClientServer(cfg)
	return testenv.ServeUnix(t, filepath.Join(t.TempDir(), "sock"), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
}

// A panic while serving one request is recovered, logged and counted; the
// request gets a temporary failure and every connection keeps working.
func TestPanicIsContained(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	var logs lockedBuffer
	shared := dovecot.NewShared(1)
	path := serve(t, dovecot.ClientConfig{
		Engine: panicEngine{env.eng}, Mechs: []sasl.Def{sasl.Defs["PLAIN"]}, Shared: shared,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	c := dial(t, path)
	for range 6 {
		c.readLine(time.Second)
	}
	c.send("VERSION\t1\t2")
	c.send("CPID\t1")
	c.send("AUTH\t1\tPLAIN\tservice=imap\tresp=" + dovecot.EncodeBase64([]byte("\x00boom@example.com\x00x")))
	if got := c.readLine(2 * time.Second); got != "FAIL\t1\tcode=temp_fail" {
		t.Fatalf("panicking request: %q", got)
	}
	c.send("AUTH\t2\tPLAIN\tservice=imap\tresp=AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==")
	if got := c.readLine(2 * time.Second); got != "OK\t2\tuser=alice@example.com" {
		t.Fatalf("same connection after the panic: %q", got)
	}
	if n := shared.Stats.Panics.Load(); n != 1 {
		t.Fatalf("panics counted: %d", n)
	}
	if !strings.Contains(logs.String(), "simulated bug") {
		t.Fatalf("panic not logged:\n%s", logs.String())
	}
}

// Debug logging never shows a password or a resp=/CONT payload unless
// auth_debug_passwords is on.
func TestDebugLogHidesSecrets(t *testing.T) {
	for _, showPasswords := range []bool{false, true} {
		env := newTestEnv(t, engine.Settings{})
		var logs lockedBuffer
		path := serve(t, dovecot.ClientConfig{
			Engine: env.eng, Mechs: []sasl.Def{sasl.Defs["PLAIN"], sasl.Defs["LOGIN"]}, Shared: dovecot.NewShared(1),
			Debug: true, DebugPasswords: showPasswords,
			Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		})
		c := dial(t, path)
		for range 7 {
			c.readLine(time.Second)
		}
		c.send("VERSION\t1\t2")
		c.send("CPID\t1")
		resp := dovecot.EncodeBase64([]byte("\x00alice@example.com\x00s3cr3t-pw"))
		c.send("AUTH\t1\tPLAIN\tservice=imap\tresp=" + resp)
		c.readLine(2 * time.Second)
		c.send("AUTH\t2\tLOGIN\tservice=imap")
		c.readLine(2 * time.Second)
		c.send("CONT\t2\t" + dovecot.EncodeBase64([]byte("alice@example.com")))
		c.readLine(2 * time.Second)
		contPW := dovecot.EncodeBase64([]byte("another-s3cr3t"))
		c.send("CONT\t2\t" + contPW)
		c.readLine(2 * time.Second)
		out := logs.String()
		leaked := strings.Contains(out, resp) || strings.Contains(out, contPW) || strings.Contains(out, "s3cr3t")
		if !showPasswords && leaked {
			t.Fatalf("secrets in the debug log:\n%s", out)
		}
		if showPasswords && !strings.Contains(out, resp) {
			t.Fatalf("auth_debug_passwords=yes should log the payload:\n%s", out)
		}
	}
}
