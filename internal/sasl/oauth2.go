package sasl

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/authd-project/authd/internal/engine"
)

// The error documents Dovecot 2.3 sends as a challenge when the token is
// refused (mech-oauth2.c): RFC 7628 §3.2.2 for OAUTHBEARER, Google's
// XOAUTH2 document for XOAUTH2.
var (
	oauthBearerError = []byte(`{"status":"invalid_token"}`)
	xoauth2Error     = []byte(`{"status":"401","schemes":"bearer","scope":"mail"}`)
)

// oauth2Mech is OAUTHBEARER (RFC 7628) or XOAUTH2 as Dovecot 2.3's
// mech-oauth2.c runs them with a passdb that is not oauth2: the bearer
// token is verified as if it were the user's password (docs/protocol.md §4.3,
// observed). On a refused token the server sends the JSON error as a
// challenge; the client must answer once more (RFC 7628 §3.2.3: with
// %x01) and then gets the failure.
type oauth2Mech struct {
	env    *Env
	bearer bool // OAUTHBEARER; else XOAUTH2
	state  int  // 0: want the client response, 1: error sent, 2: done
	failed engine.Result
}

func newOAuthBearer(env *Env) Mechanism { return &oauth2Mech{env: env, bearer: true} }
func newXOAuth2(env *Env) Mechanism     { return &oauth2Mech{env: env} }

func (m *oauth2Mech) Step(ctx context.Context, data []byte, present bool) Reply {
	switch m.state {
	case 0:
		if !present {
			return Reply{Challenge: []byte{}}
		}
		m.state = 2
		var user, token, msg string
		if m.bearer {
			user, token, msg = parseOAuthBearer(string(data))
		} else {
			user, token, msg = parseXOAuth2(string(data))
		}
		if msg != "" {
			if user != "" {
				// Dovecot sets the user before it finds the token
				// missing: FAIL names the user.
				return m.env.failAsUser(user, msg)
			}
			return fail(msg)
		}
		res := m.env.Engine.VerifyPlain(ctx, m.env.Info, "", user, []byte(token))
		switch res.Status {
		case engine.StatusOK, engine.StatusTempFail:
			return done(res)
		}
		// Every other failure (wrong token, unknown user, disabled…)
		// goes through the error challenge; the FAIL that follows keeps
		// its user and code, as Dovecot's passdb_result does.
		m.state, m.failed = 1, res
		doc := xoauth2Error
		if m.bearer {
			doc = oauthBearerError
		}
		return Reply{Challenge: withOpenIDConfig(doc, m.env.settings().OAuth2OpenIDConfigURL)}
	case 1:
		// Whatever the client answers, the exchange fails (mech-oauth2.c:
		// "client is supposed to ack with empty response").
		m.state = 2
		return done(m.failed)
	}
	return stepAfterEnd()
}

// withOpenIDConfig adds "openid-configuration" as the last member of the
// error document, as Dovecot's mech-oauth2.c appends it.
func withOpenIDConfig(doc []byte, url string) []byte {
	if url == "" {
		return doc
	}
	v, err := json.Marshal(url)
	if err != nil {
		return doc
	}
	out := append([]byte{}, doc[:len(doc)-1]...)
	out = append(out, `,"openid-configuration":`...)
	out = append(out, v...)
	return append(out, '}')
}

// bearerToken takes the token from an "auth=" value: "Bearer" (any case),
// one space, then a non-empty token without CR or LF (RFC 6750 §2.1,
// Dovecot's oauth2_valid_token).
func bearerToken(v string) (string, bool) {
	if len(v) < 7 || !strings.EqualFold(v[:7], "bearer ") {
		return "", false
	}
	t := v[7:]
	if t == "" || strings.ContainsAny(t, "\r\n") {
		return "", false
	}
	return t, true
}

// parseXOAuth2 reads "user=" U ^A "auth=Bearer " T ^A ^A. Unknown fields
// are ignored, the last user= and auth= count, a malformed auth= fails at
// once (mech-oauth2.c). XOAUTH2 has no escaping. On an error, user is set
// when Dovecot would already have taken the user name.
func parseXOAuth2(s string) (user, token, errText string) {
	userGiven := false
	for _, f := range strings.Split(s, "\x01") {
		if v, ok := strings.CutPrefix(f, "user="); ok {
			user, userGiven = v, true
		} else if v, ok := strings.CutPrefix(f, "auth="); ok {
			t, ok := bearerToken(v)
			if !ok {
				return "", "", "XOAUTH2: invalid continued data"
			}
			token = t
		}
	}
	switch {
	case !userGiven:
		return "", "", "XOAUTH2: username or token missing"
	case user == "":
		return "", "", "XOAUTH2: empty username"
	case token == "":
		return user, "", "XOAUTH2: username or token missing"
	}
	return user, token, ""
}

// parseOAuthBearer reads RFC 7628 §3.1's client response:
//
//	gs2-header kvsep *(key "=" value kvsep) kvsep
//
// The user comes from the gs2-header's a= (RFC 5801 saslname escaping);
// channel binding ("p") and non-standard GS2 ("F") are refused, "n" and
// "y" accepted; unknown key/values are ignored (mech-oauth2.c).
func parseOAuthBearer(s string) (user, token, errText string) {
	fields := strings.Split(s, "\x01")
	if fields[0] == "" {
		return "", "", "OAUTHBEARER: invalid continued data"
	}
	userGiven := false
	for _, part := range strings.Split(fields[0], ",") {
		if part == "" {
			continue
		}
		switch part[0] {
		case 'f', 'F':
			return "", "", "OAUTHBEARER: client requested non-standard mechanism"
		case 'p':
			return "", "", "OAUTHBEARER: client requested and used channel-binding"
		case 'n', 'y':
		case 'a':
			v, ok := strings.CutPrefix(part, "a=")
			if !ok {
				return "", "", "OAUTHBEARER: invalid username escaping"
			}
			if user, ok = decodeSASLName(v); !ok {
				return "", "", "OAUTHBEARER: invalid username escaping"
			}
			userGiven = true
		default:
			return "", "", "OAUTHBEARER: invalid gs2-header in request"
		}
	}
	for _, f := range fields {
		if v, ok := strings.CutPrefix(f, "auth="); ok {
			t, ok := bearerToken(v)
			if !ok {
				return "", "", "OAUTHBEARER: invalid continued data"
			}
			token = t
		}
	}
	switch {
	case !userGiven:
		return "", "", "OAUTHBEARER: missing username or token"
	case user == "":
		return "", "", "OAUTHBEARER: empty username"
	case token == "":
		return user, "", "OAUTHBEARER: missing username or token"
	}
	return user, token, ""
}
