package sasl

import (
	"context"

	"github.com/authd-project/authd/internal/engine"
)

// lookupCredentials asks the engine for authcid's credentials in the
// wanted scheme. credUser is the name a DIGEST-MD5 digest is made for
// ("" for the other schemes).
func (e *Env) lookupCredentials(ctx context.Context, authzid, authcid, wanted, credUser string) (engine.Result, []byte) {
	return e.Engine.LookupCredentials(ctx, e.Info, authzid, authcid, wanted, credUser)
}

// proofMismatch turns a successful credentials lookup whose proof did not
// verify into the reply PLAIN gives for a wrong password: a plain FAIL
// naming the authenticating user, with the passdb's visible fields except
// nologin (docs/protocol.md §1.5). A master user has not become the login user
// yet: Dovecot switches only after success (docs/protocol.md §5.3).
func proofMismatch(res engine.Result, reason string) Reply {
	out := engine.Result{
		Status:    engine.StatusFail,
		User:      res.User,
		OrigUser:  res.OrigUser,
		NoDelay:   res.NoDelay,
		Anonymous: res.Anonymous,
		Reason:    reason,
	}
	if res.MasterUser != "" {
		out.User, out.Anonymous = res.MasterUser, false
	}
	for _, f := range res.Fields {
		if f.Key != "nologin" {
			out.Fields = append(out.Fields, f)
		}
	}
	return Reply{Done: true, Result: out}
}

// failAsUser fails the request for the user name the client gave.
func (e *Env) failAsUser(name, reason string) Reply {
	res := engine.Result{Status: engine.StatusFail, OrigUser: name, Reason: reason}
	if u, err := e.Engine.ProcessName(name, e.Info); err == nil {
		res.User = u
	}
	return done(res)
}

// succeeded ends an exchange whose proof verified: the engine may still
// refuse it (Engine.Succeeded). final is the server's last data (SCRAM v=,
// DIGEST-MD5 rspauth=), not sent on a refusal.
func (e *Env) succeeded(ctx context.Context, res engine.Result, final []byte) Reply {
	res = e.Engine.Succeeded(ctx, e.Info, res)
	if res.Status != engine.StatusOK {
		return done(res)
	}
	return Reply{Done: true, Result: res, Final: final}
}

// done wraps a final engine Result.
func done(res engine.Result) Reply { return Reply{Done: true, Result: res} }

// tempFail is an internal failure of the mechanism itself (no randomness):
// the client should try again later.
func tempFail(reason string) Reply {
	return Reply{Done: true, Result: engine.Result{Status: engine.StatusTempFail, Reason: reason}}
}

// stepAfterEnd fails a Step that comes after the exchange ended; the
// protocol layer never makes one.
func stepAfterEnd() Reply { return fail("unexpected data after the exchange ended") }
