// Package sasl implements the server side of the SASL mechanisms Dovecot
// 2.3 offers, as step machines: the protocol layer feeds client data in and
// gets a challenge or a final result out. Mechanisms ask the engine to
// verify passwords or fetch credentials; they never see a backend.
//
// The mechanisms (docs/protocol.md §4): PLAIN (RFC 4616), LOGIN, CRAM-MD5
// (RFC 2195), DIGEST-MD5 (RFC 2831), SCRAM-SHA-1 and SCRAM-SHA-256
// (RFC 5802, RFC 7677), APOP (RFC 1939 §7, checked as Dovecot does),
// ANONYMOUS (RFC 4505), EXTERNAL (RFC 4422 appendix A), OAUTHBEARER
// (RFC 7628) and XOAUTH2. Each reproduces Dovecot 2.3's observable
// behaviour, checked by a differential test against Dovecot 2.3.19: the
// same challenges, the same accepted client messages, the same failures
// (garbage that only Dovecot's looser C parsing lets through, such as a
// SCRAM GS2 flag "nx", is refused). Randomness, the clock and the host
// name come from Settings so that the worked exchanges of docs/protocol.md
// §4.3 replay byte for byte.
package sasl

import (
	"bytes"
	"context"
	"errors"

	"github.com/authd-project/authd/internal/engine"
)

// Engine is what mechanisms need from the request pipeline.
// *engine.Engine implements it.
type Engine interface {
	// VerifyPlain authenticates authcid (as authzid when that differs:
	// a master login, docs/protocol.md §5.3) with a plaintext password.
	VerifyPlain(ctx context.Context, info *engine.Info, authzid, authcid string, password []byte) engine.Result
	// LookupCredentials returns authcid's credentials in the wanted
	// scheme (docs/protocol.md §4.1) with a Result whose Status is OK
	// when they could be had; the mechanism then checks the client's
	// proof. credUser is the name the credentials are derived for, ""
	// for authcid: DIGEST-MD5 needs it, since Dovecot hashes the name the
	// client hashed, which is not always the lookup name (passdb.c
	// passdb_get_credentials: original_username, plus "@realm" unless the
	// mechanism appended the realm itself).
	LookupCredentials(ctx context.Context, info *engine.Info, authzid, authcid, wanted, credUser string) (engine.Result, []byte)
	// ProcessName applies name processing (realm, translation, format),
	// so that a mechanism that fails after Dovecot would have set the
	// user name (auth_request_set_username) names that user in FAIL.
	ProcessName(name string, info *engine.Info) (string, error)
	// Succeeded makes the engine's last check of a mechanism that
	// succeeded without VerifyPlain (a proof checked against looked-up
	// credentials, ANONYMOUS): the auth policy server's after-auth check,
	// which Dovecot makes whenever a mechanism succeeds. It returns res or
	// the failure that replaces it.
	Succeeded(ctx context.Context, info *engine.Info, res engine.Result) engine.Result
}

// Env is the per-request environment a mechanism runs in.
type Env struct {
	Engine Engine
	Info   *engine.Info
	// Settings are the process-wide mechanism settings, shared by every
	// request; nil means the defaults documented on Settings.
	Settings *Settings
	// SPID is the process id this server announced in the handshake
	// (SPID line) and CUID the id of the client connection (CUID line):
	// APOP accepts only challenges built from both (docs/protocol.md §4.3).
	SPID, CUID uint32
}

// Reply is a mechanism's answer to one step.
type Reply struct {
	// Challenge is sent as CONT when Done is false.
	Challenge []byte
	Done      bool
	// Result is valid when Done.
	Result engine.Result
	// Final is server data to deliver with success (SCRAM v=, DIGEST-MD5
	// rspauth=): as OK resp= with final-resp-ok, else as a last CONT.
	Final []byte
}

// Mechanism is one running exchange.
type Mechanism interface {
	// Step consumes the client's data. For the first call, present is
	// false when the AUTH command had no initial response.
	Step(ctx context.Context, data []byte, present bool) Reply
}

// Def describes a mechanism: its name, the MECH flags Dovecot sends for it
// (docs/protocol.md §4.1, in Dovecot's fixed flag order), whether NUL bytes are
// allowed in its data, and its constructor.
type Def struct {
	Name     string
	Flags    []string
	AllowNUL bool
	// Light: the mechanism's steps do no costly work of their own (no
	// key derivation, no network): whatever may wait is the engine's,
	// which announces it (internal/blocking). A server may run such a
	// step on the goroutine that read it.
	Light bool
	New   func(env *Env) Mechanism
}

// Defs is the literal map of mechanisms authd implements (house rule 5:
// explicit wiring, no init registration).
var Defs = map[string]Def{
	"PLAIN": {Name: "PLAIN", Flags: []string{"plaintext"}, AllowNUL: true, Light: true, New: func(env *Env) Mechanism { return &plainMech{env: env} }},
	"LOGIN": {Name: "LOGIN", Flags: []string{"plaintext"}, Light: true, New: func(env *Env) Mechanism { return &loginMech{env: env} }},
	// Flags below are Dovecot 2.3's mech_module flags in the order
	// mech.c writes them: private anonymous plaintext dictionary active
	// forward-secrecy mutual-auth.
	"CRAM-MD5":      {Name: "CRAM-MD5", Flags: []string{"dictionary", "active"}, New: newCRAMMD5},
	"DIGEST-MD5":    {Name: "DIGEST-MD5", Flags: []string{"dictionary", "active", "mutual-auth"}, New: newDigestMD5},
	"SCRAM-SHA-1":   {Name: "SCRAM-SHA-1", Flags: []string{"mutual-auth"}, New: newSCRAMSHA1},
	"SCRAM-SHA-256": {Name: "SCRAM-SHA-256", Flags: []string{"mutual-auth"}, New: newSCRAMSHA256},
	"APOP":          {Name: "APOP", Flags: []string{"private", "dictionary", "active"}, AllowNUL: true, New: newAPOP},
	"ANONYMOUS":     {Name: "ANONYMOUS", Flags: []string{"anonymous"}, AllowNUL: true, New: newAnonymous},
	"EXTERNAL":      {Name: "EXTERNAL", New: newExternal},
	// The token counts as a password (mech-oauth2.c: "the token is
	// still considered as password").
	"OAUTHBEARER": {Name: "OAUTHBEARER", Flags: []string{"plaintext"}, New: newOAuthBearer},
	"XOAUTH2":     {Name: "XOAUTH2", Flags: []string{"plaintext"}, New: newXOAuth2},
}

// ErrUnsupported is returned by Lookup for a mechanism authd does not
// implement.
var ErrUnsupported = errors.New("unsupported SASL mechanism")

func fail(reason string) Reply {
	return Reply{Done: true, Result: engine.Result{Status: engine.StatusFail, Reason: reason}}
}

// plainMech is RFC 4616 PLAIN: authzid NUL authcid NUL password.
type plainMech struct{ env *Env }

func (m *plainMech) Step(ctx context.Context, data []byte, present bool) Reply {
	if !present {
		return Reply{Challenge: []byte{}}
	}
	// Exactly two NULs (docs/protocol.md §4.3).
	if bytes.Count(data, []byte{0}) != 2 {
		return fail("invalid PLAIN data")
	}
	i := bytes.IndexByte(data, 0)
	j := i + 1 + bytes.IndexByte(data[i+1:], 0)
	authzid, authcid, pass := string(data[:i]), string(data[i+1:j]), data[j+1:]
	if authcid == "" {
		return fail("empty authcid")
	}
	return Reply{Done: true, Result: m.env.Engine.VerifyPlain(ctx, m.env.Info, authzid, authcid, pass)}
}

// loginMech is the LOGIN mechanism: Username: / Password: prompts.
type loginMech struct {
	env   *Env
	user  string
	got   bool
	asked bool
}

var (
	promptUser = []byte("Username:")
	promptPass = []byte("Password:")
)

func (m *loginMech) Step(ctx context.Context, data []byte, present bool) Reply {
	if !m.got {
		// An empty or absent initial response asks for the user name; a
		// non-empty one is the user name (docs/protocol.md §4.2).
		if !present || len(data) == 0 {
			if m.asked {
				return fail("empty user name")
			}
			m.asked = true
			return Reply{Challenge: promptUser}
		}
		m.user = string(data)
		m.got = true
		return Reply{Challenge: promptPass}
	}
	return Reply{Done: true, Result: m.env.Engine.VerifyPlain(ctx, m.env.Info, "", m.user, data)}
}
