package dovecot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/blocking"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
)

// A light request (PLAIN, LOGIN) runs on its connection's reader, which
// hands the reading role on before the request waits (docs/architecture.md
// §The request pipeline). These tests hold one request of a connection and
// expect the next one on the same connection answered meanwhile.

// holdingEngine holds every PLAIN login of "slow" until release is closed,
// waiting as announce says: on its context (a backend call), through the
// engine's announcement (a costly hash), or not announced at all (a
// backend stuck in a call without a context). Other logins go to the
// real engine.
type holdingEngine struct {
	dovecot.ClientEngine
	announce string
	held     chan struct{} // a slow login started
	release  chan struct{}
}

func (h holdingEngine) VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, pw []byte) engine.Result {
	if authcid != "slow" {
		return h.ClientEngine.VerifyPlain(ctx, info, authzid, authcid, pw)
	}
	h.held <- struct{}{}
	switch h.announce {
	case "context":
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	case "hook":
		if b, ok := ctx.Value(blocking.Key{}).(blocking.Hook); ok {
			b.WillBlock()
		}
		<-h.release
	default:
		<-h.release
	}
	return engine.Result{Status: engine.StatusOK, User: authcid}
}

const slowPlain = "AUTH\t%d\tPLAIN\tservice=imap\tresp=AHNsb3cAeA==" // "slow", "x"

func TestReaderRelaysBeforeWaiting(t *testing.T) {
	for _, tc := range []struct {
		announce string
		within   time.Duration
	}{
		{"context", 2 * time.Second},
		{"hook", 2 * time.Second},
		// Not announced: the sweeper relays after one sweep (50 ms for
		// an 800 ms deadline).
		{"none", 2 * time.Second},
	} {
		t.Run(tc.announce, func(t *testing.T) {
			env := newTestEnv(t, engine.Settings{})
			eng := holdingEngine{ClientEngine: env.eng, announce: tc.announce, held: make(chan struct{}, 1), release: make(chan struct{})}
			path := env.startLimited(t, dovecot.Limits{Request: 800 * time.Millisecond}, eng)
			c := dial(t, path)
			c.handshake()
			c.send(fmt.Sprintf(slowPlain, 1))
			<-eng.held
			c.send(fmt.Sprintf(alicePlain, 2))
			if got := c.readLine(tc.within); !strings.HasPrefix(got, "OK\t2\t") {
				t.Fatalf("the second request while the first is held: %q", got)
			}
			close(eng.release)
			if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t1\t") && got != "FAIL\t1\tcode=temp_fail" {
				t.Fatalf("the held request: %q", got)
			}
			// The connection is still read, by whichever goroutine holds
			// the role now.
			c.send(fmt.Sprintf(alicePlain, 3))
			if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t3\t") {
				t.Fatalf("after the relay: %q", got)
			}
		})
	}
}

// Pipelined light requests are answered by the reader in the order they
// came, their replies written together; many relays on one connection
// leave it working, and its end is seen once.
func TestReaderPipelinedAndRelayed(t *testing.T) {
	env := newTestEnv(t, engine.Settings{})
	eng := holdingEngine{ClientEngine: env.eng, announce: "context", held: make(chan struct{}, 100), release: make(chan struct{})}
	path := env.startLimited(t, dovecot.Limits{}, eng)
	c := dial(t, path)
	c.handshake()
	var b strings.Builder
	for i := 1; i <= 100; i++ {
		if i%10 == 0 {
			fmt.Fprintf(&b, slowPlain+"\n", i)
		} else {
			fmt.Fprintf(&b, alicePlain+"\n", i)
		}
	}
	c.send(strings.TrimSuffix(b.String(), "\n"))
	for i := 1; i <= 100; i++ {
		if i%10 == 0 {
			continue
		}
		if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, fmt.Sprintf("OK\t%d\t", i)) {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	close(eng.release)
	for range 10 {
		if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t") {
			t.Fatalf("held reply: %q", got)
		}
	}
	c.send(fmt.Sprintf(alicePlain, 101))
	if got := c.readLine(2 * time.Second); !strings.HasPrefix(got, "OK\t101\t") {
		t.Fatalf("after ten relays: %q", got)
	}
}
