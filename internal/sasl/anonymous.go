package sasl

import (
	"context"

	"github.com/authd-project/authd/internal/engine"
)

// anonymousMech is RFC 4505 ANONYMOUS as Dovecot 2.3's mech-anonymous.c
// does it: the client's trace data is only for logs (it is not even
// checked), the user becomes auth_anonymous_username and no passdb is
// asked (passdb_need = nothing). The name is taken as configured, without
// realm or auth_username_format, so a userdb sees exactly that name.
type anonymousMech struct {
	env  *Env
	done bool
}

func newAnonymous(env *Env) Mechanism { return &anonymousMech{env: env} }

func (m *anonymousMech) Step(ctx context.Context, _ []byte, present bool) Reply {
	if m.done {
		return stepAfterEnd()
	}
	if !present {
		// The trace is client-first (RFC 4505 §3): ask for it.
		return Reply{Challenge: []byte{}}
	}
	m.done = true
	// The result looks like the engine's for that user: OK, and
	// Anonymous, which adds the "anonymous" flag to OK (docs/protocol.md §1.5).
	return m.env.succeeded(ctx, engine.Result{Status: engine.StatusOK, User: m.env.anonymousUsername(), Anonymous: true}, nil)
}
