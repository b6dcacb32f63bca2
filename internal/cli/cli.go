// Package cli is the client side of `authd test`, `authd user` and `authd
// lookup`: the same questions doveadm asks (auth test, user, auth lookup),
// over authd's sockets or its gRPC API, with one way to print the answers
// and one mapping to doveadm's exit codes (docs/protocol.md §3.2), so a
// script sees the same lines and codes whichever transport it uses.
//
// A transport (socket.go, grpc.go) answers with values; this file prints
// them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Exit codes, doveadm's (docs/protocol.md §3.2, §6.2).
const (
	ExitOK       = 0
	ExitUsage    = 64 // EX_USAGE: a bad parameter
	ExitNoUser   = 67 // EX_NOUSER: the user does not exist
	ExitTempFail = 75 // EX_TEMPFAIL: could not tell (backend down, server unreachable)
	ExitNoPerm   = 77 // EX_NOPERM: authentication failed
)

// Target is where the questions go: a socket path, or a gRPC address
// (host:port or unix:/path) when GRPC is set.
type Target struct {
	Socket string
	GRPC   string
	TLS    TLSOptions
}

// AuthResult is the answer to an authentication.
type AuthResult uint8

// The authentication answers.
const (
	AuthOK AuthResult = iota
	AuthFailed
	AuthTempFail
)

// AuthAnswer is what a transport answered to an authentication: the
// result and the extra fields, as "key=value" (or "key").
type AuthAnswer struct {
	Result AuthResult
	Fields []string
}

// LookupAnswer is what a transport answered to a userdb or passdb lookup.
type LookupAnswer struct {
	Found  bool
	User   string
	Fields [][2]string
}

// errUsage marks an error in the request itself (exit 64); errNoPerm a
// request the server refuses to this caller (exit 77); every other error
// is "could not tell" (exit 75).
var (
	errUsage  = errors.New("usage")
	errNoPerm = errors.New("permission denied")
)

// transport asks authd; an error means no answer could be had.
type transport interface {
	Auth(ctx context.Context, user, master string, password []byte, params []string) (AuthAnswer, error)
	Lookup(ctx context.Context, kind LookupKind, user string, params []string) (LookupAnswer, error)
	List(ctx context.Context, mask string, params []string, fn func(user string)) error
	Close() error
}

// LookupKind says which database a lookup asks.
type LookupKind uint8

// The lookups.
const (
	UserLookup LookupKind = iota // USER: the userdb, like doveadm user
	PassLookup                   // PASS: the passdb, like doveadm auth lookup
)

func (k LookupKind) command() string {
	if k == PassLookup {
		return "lookup"
	}
	return "user"
}

func (k LookupKind) db() string {
	if k == PassLookup {
		return "passdb"
	}
	return "userdb"
}

func open(t Target, defaultSocket string) (transport, error) {
	if t.GRPC != "" {
		return dialGRPC(t.GRPC, t.TLS)
	}
	if t.Socket == "" {
		t.Socket = defaultSocket
	}
	return socketTransport{path: t.Socket}, nil
}

// exitFor maps an error to an exit code.
func exitFor(err error) int {
	switch {
	case errors.Is(err, errUsage):
		return ExitUsage
	case errors.Is(err, errNoPerm):
		return ExitNoPerm
	}
	return ExitTempFail
}

// Test authenticates user with password (as master when master is set:
// the master user logs in as user), like doveadm auth test, printing
// "passdb: USER auth succeeded|failed" and the extra fields.
func Test(ctx context.Context, t Target, user, master string, password []byte, params []string, stdout, stderr io.Writer) int {
	tr, err := open(t, "run/auth-client")
	if err != nil {
		fmt.Fprintf(stderr, "authd test: %v\n", err)
		return ExitUsage
	}
	defer tr.Close()
	ans, err := tr.Auth(ctx, user, master, password, params)
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stdout, "passdb: %s auth failed\n", user)
		}
		fmt.Fprintf(stderr, "authd test: %v\n", err)
		return exitFor(err)
	}
	verdict := "succeeded"
	if ans.Result != AuthOK {
		verdict = "failed"
	}
	fmt.Fprintf(stdout, "passdb: %s auth %s\n", user, verdict)
	printExtra(stdout, ans.Fields)
	switch ans.Result {
	case AuthOK:
		return ExitOK
	case AuthTempFail:
		return ExitTempFail
	}
	return ExitNoPerm
}

// Lookup asks the userdb (like doveadm user) or the passdb (like doveadm
// auth lookup) about user and prints the fields as a field<TAB>value
// table. A userdb mask with * or ? lists the matching users instead.
func Lookup(ctx context.Context, t Target, kind LookupKind, user string, params []string, stdout, stderr io.Writer) int {
	tr, err := open(t, "run/auth-userdb")
	if err != nil {
		fmt.Fprintf(stderr, "authd %s: %v\n", kind.command(), err)
		return ExitUsage
	}
	defer tr.Close()
	if kind == UserLookup && strings.ContainsAny(user, "*?") {
		err := tr.List(ctx, user, params, func(u string) { fmt.Fprintln(stdout, u) })
		if err != nil {
			fmt.Fprintf(stderr, "authd user: listing users failed: %v\n", err)
			return exitFor(err)
		}
		return ExitOK
	}
	ans, err := tr.Lookup(ctx, kind, user, params)
	switch {
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "authd %s: %v\n", kind.command(), err)
		return ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "%s lookup failed for %s: %v\n", kind.db(), user, err)
		return ExitTempFail
	case !ans.Found:
		fmt.Fprintf(stderr, "user %s doesn't exist\n", user)
		return ExitNoUser
	}
	fmt.Fprintf(stdout, "field\tvalue\nuser\t%s\n", ans.User)
	for _, f := range ans.Fields {
		fmt.Fprintf(stdout, "%s\t%s\n", f[0], f[1])
	}
	return ExitOK
}

// printExtra prints the "extra fields:" block of doveadm auth test.
func printExtra(w io.Writer, fs []string) {
	var shown []string
	for _, f := range fs {
		if f != "" {
			shown = append(shown, f)
		}
	}
	if len(shown) == 0 {
		return
	}
	fmt.Fprintln(w, "extra fields:")
	for _, f := range shown {
		fmt.Fprintf(w, "  %s\n", f)
	}
}
