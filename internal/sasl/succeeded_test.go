package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/authd-project/authd/internal/engine"
)

// succeededEngine counts the mechanisms' calls of Succeeded and refuses
// them when told to, as an auth policy server's after-auth check would.
type succeededEngine struct {
	*engine.Engine
	calls  int
	refuse bool
}

func (e *succeededEngine) Succeeded(_ context.Context, _ *engine.Info, res engine.Result) engine.Result {
	e.calls++
	if e.refuse {
		return engine.Result{Status: engine.StatusFail, User: res.User, Reason: "refused"}
	}
	return res
}

// Mechanisms that check a proof themselves call Succeeded only when the
// proof holds (Dovecot's after-auth check runs in auth_request_success),
// and a refusal there fails the exchange without the server's final data.
func TestSucceededAfterProof(t *testing.T) {
	cram := func(eng Engine, pw string) Reply {
		m := Defs["CRAM-MD5"].New(newTestEnv(eng, &Settings{Hostname: "h"}, nil))
		challenge := m.Step(context.Background(), nil, false).Challenge
		mac := hmac.New(md5.New, []byte(pw))
		mac.Write(challenge)
		return m.Step(context.Background(), []byte("alice@example.com "+hex.EncodeToString(mac.Sum(nil))), true)
	}
	scram := func(eng Engine, pw string) Reply {
		m := Defs["SCRAM-SHA-256"].New(newTestEnv(eng, nil, nil))
		c := &scramClient{h: sha256.New, user: "alice@example.com", password: pw, cnonce: "abcdefgh"}
		rep := m.Step(context.Background(), c.first(), true)
		fin, err := c.final(rep.Challenge)
		if err != nil {
			t.Fatal(err)
		}
		return m.Step(context.Background(), fin, true)
	}
	anon := func(eng Engine, _ string) Reply {
		m := Defs["ANONYMOUS"].New(newTestEnv(eng, &Settings{AnonymousUsername: "anonymous"}, nil))
		return m.Step(context.Background(), []byte("trace"), true)
	}
	for name, run := range map[string]func(Engine, string) Reply{"CRAM-MD5": cram, "SCRAM-SHA-256": scram, "ANONYMOUS": anon} {
		eng := &succeededEngine{Engine: newEngine(t, userSets["default"])}
		if rep := run(eng, "secret"); rep.Result.Status != engine.StatusOK || eng.calls != 1 {
			t.Errorf("%s: %+v, %d calls", name, rep.Result, eng.calls)
		}
		if name != "ANONYMOUS" {
			if rep := run(eng, "wrong"); rep.Result.Status != engine.StatusFail || eng.calls != 1 {
				t.Errorf("%s wrong password: %+v, %d calls", name, rep.Result, eng.calls)
			}
		}
		eng.refuse = true
		if rep := run(eng, "secret"); rep.Result.Status != engine.StatusFail || rep.Final != nil || eng.calls != 2 {
			t.Errorf("%s refused: %+v final %q, %d calls", name, rep.Result, rep.Final, eng.calls)
		}
	}
}
