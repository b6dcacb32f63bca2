// Package engine is the request pipeline: name processing, the passdb and
// userdb chains with their result rules, password verification on a bounded
// CPU pool, and the fields that go back to the client. It is the one place
// where auth policy lives; the protocol layers only translate its Results.
package engine

import (
	"net/netip"
	"time"

	"github.com/authd-project/authd/internal/fields"
)

// Status is the outcome of a request, mapped by each protocol to its own
// reply (OK / FAIL code=… / USER / NOTFOUND / a gRPC status).
type Status int

// The statuses. Fail covers both "unknown user" and "wrong password": they
// look the same to every client on purpose.
const (
	StatusOK Status = iota
	StatusFail
	StatusTempFail
	StatusUserDisabled
	StatusPassExpired
	StatusAuthzFail
	StatusNotFound // userdb/passdb lookups only (USER, PASS): the user does not exist
)

var statusNames = [...]string{"ok", "fail", "tempfail", "user_disabled", "pass_expired", "authz_fail", "notfound"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Info carries the parameters a protocol received with a request (AUTH
// parameters, USER/PASS parameters, gRPC fields).
type Info struct {
	Service                                  string
	LocalIP, RemoteIP, LocalPort, RemotePort string
	RealLocalIP, RealRemoteIP                string
	RealLocalPort, RealRemotePort            string
	// RemoteAddr is RemoteIP parsed, when the protocol layer parsed it
	// already (the zero Addr otherwise: the engine parses RemoteIP).
	RemoteAddr      netip.Addr
	Secured         string // "", "secured" or "TLS"
	ValidClientCert bool
	CertUsername    string
	// NoPenalty: the client asked that the brute-force defence leave
	// its address alone (a trusted network); the protocol layer sets it
	// only where that may be honoured (login sockets, trusted
	// listeners).
	NoPenalty, Debug bool
	// NotLocal: a request without RemoteIP still does not match
	// allow_nets = local. The gRPC API sets it: its caller is a service
	// acting for an end user elsewhere, not a local tool like doveadm.
	NotLocal                                 bool
	Session, SessionPID, LocalName, ClientID string
	ClientPID                                string
	Mech                                     string
	ForwardFields                            fields.Fields

	// Protocol names the entry point for logs: client, login or grpc.
	Protocol string
	// Arrived is when the request arrived: a failure's reply leaves a
	// fixed time after it (FinishAuth). Zero means "when it finished".
	Arrived time.Time

	// attempt is the authentication's state for FinishAuth; the engine
	// sets it when the account is known.
	attempt *attempt
	// att is where attempt points once the engine begins one: part of the
	// Info, no allocation of its own.
	att attempt
}

// Result is the engine's answer.
type Result struct {
	Status Status
	// User is the final user name; empty when the failure happened before a
	// name was known.
	User string
	// OrigUser is the name as the client typed it.
	OrigUser string
	// MasterUser is set when a master user logged in as User.
	MasterUser string
	// Fields are the passdb extra fields to send (hidden ones removed).
	Fields fields.Fields
	// Userdb holds userdb fields: prefetch fields after a passdb request,
	// the userdb result after a userdb request.
	Userdb fields.Fields
	// NoDelay: the passdb asked for no failure delay.
	NoDelay bool
	// Anonymous: the user is auth_anonymous_username.
	Anonymous bool
	// Reason is the internal reason for logs (never sent to clients).
	Reason string
	// ProxyPassword is the password the client typed, kept only when the
	// passdb returned proxy and no pass: login sockets send it as pass= so
	// the login process can log in to the backend (docs/protocol.md §1.5).
	ProxyPassword string
}
