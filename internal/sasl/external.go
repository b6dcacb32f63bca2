package sasl

import (
	"context"
)

// externalMech is RFC 4422 appendix A EXTERNAL as Dovecot 2.3's
// mech-external.c does it: the identity comes from the TLS layer (the
// login process's cert_username, used only with
// auth_ssl_username_from_cert=yes), the client's data is an optional
// authorization identity, and the passdb is asked to verify an empty
// password, so only a passdb with nopassword lets the user in
// (docs/protocol.md §4.3, §5.8).
type externalMech struct {
	env  *Env
	done bool
}

func newExternal(env *Env) Mechanism { return &externalMech{env: env} }

func (m *externalMech) Step(ctx context.Context, data []byte, present bool) Reply {
	if m.done {
		return stepAfterEnd()
	}
	if !present {
		return Reply{Challenge: []byte{}}
	}
	m.done = true
	info := m.env.Info
	// Dovecot knows the user only when auth_ssl_username_from_cert put
	// cert_username there; login processes send cert_username only for a
	// certificate that verified, and we insist on valid-client-cert too.
	if info == nil || !m.env.settings().UsernameFromCert || !info.ValidClientCert || info.CertUsername == "" {
		return fail("EXTERNAL: username not known")
	}
	// An authzid naming someone else is a master login (docs/protocol.md §5.3).
	return done(m.env.Engine.VerifyPlain(ctx, info, string(data), info.CertUsername, []byte{}))
}
