package engine_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/blocking"
	"github.com/authd-project/authd/internal/engine"
)

// hookCount is a blocking.Hook that counts the engine's announcements.
type hookCount struct{ n atomic.Int32 }

func (h *hookCount) WillBlock() { h.n.Add(1) }

// hookCtx is a context carrying h, as the client socket's step context
// does.
type hookCtx struct {
	context.Context
	h *hookCount
}

func (c hookCtx) Value(key any) any {
	if _, ok := key.(blocking.Key); ok {
		return c.h
	}
	return c.Context.Value(key)
}

// remotePassdb stands for a backend across the network: it answers from
// a map, but does not say that it answers from memory.
type remotePassdb struct{ users map[string]string }

func (r remotePassdb) LookupPass(_ context.Context, req *backends.Request) (backends.PassAnswer, error) {
	pw, ok := r.users[req.User]
	if !ok {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: backends.PassEntry{HasPassword: true, Scheme: "PLAIN", Data: pw}}, nil
}

// The engine announces what may wait before it starts it: a lookup in a
// backend that does not answer from memory, and a password hash that is
// more than a comparison; a passwd-file login with a {PLAIN} password
// announces nothing, so the caller can answer it on the goroutine that
// read it.
func TestEngineAnnouncesBlocking(t *testing.T) {
	plain := pwfile(t, "alice@x:{PLAIN}a1::::::\n")
	hashed := pwfile(t, "carol@x:{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=::::::\n")
	remote := pass(nil, func(s *engine.DBSpec) {
		s.Driver, s.Passdb = "remote", remotePassdb{users: map[string]string{"bob@x": "b1"}}
	})
	cases := []struct {
		name     string
		passdb   engine.DBSpec
		user, pw string
		want     engine.Status
		announce bool
	}{
		{"passwd-file {PLAIN}", pass(plain), "alice@x", "a1", engine.StatusOK, false},
		{"passwd-file {PLAIN}, wrong password", pass(plain), "alice@x", "nope", engine.StatusFail, false},
		{"passwd-file {SHA256}", pass(hashed), "carol@x", "secret", engine.StatusOK, true},
		{"remote backend", remote, "bob@x", "b1", engine.StatusOK, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, engine.Settings{}, []engine.DBSpec{tc.passdb}, nil)
			h := &hookCount{}
			res := e.VerifyPlain(hookCtx{Context: context.Background(), h: h}, &engine.Info{Service: "imap", Mech: "PLAIN"}, "", tc.user, []byte(tc.pw))
			if res.Status != tc.want {
				t.Fatalf("status %v, want %v (%s)", res.Status, tc.want, res.Reason)
			}
			if got := h.n.Load() > 0; got != tc.announce {
				t.Errorf("announced blocking: %v, want %v", got, tc.announce)
			}
		})
	}
}
