// Package grpcserver serves authd's gRPC API (api/proto/authd/v1) over the
// same engine that answers the Dovecot sockets. (The client side of
// `authd test|user|lookup --grpc` is package cli.)
//
// # Same answers as the sockets
//
// Authenticate is an AUTH PLAIN on a client socket (the engine sees
// mechanism PLAIN, so `mechanisms =` filters on passdbs apply alike),
// LookupPassdb the master protocol's PASS, LookupUser its USER, ListUsers
// its LIST and FlushCache its CACHE-FLUSH. The engine's statuses map as the
// sockets map them (docs/architecture.md §The request pipeline):
//
//	engine status        client socket            gRPC
//	OK                   OK                       AUTH_RESULT_OK
//	Fail                 FAIL                     AUTH_RESULT_FAILED (delayed)
//	UserDisabled         FAIL code=user_disabled  AUTH_RESULT_USER_DISABLED (delayed)
//	PassExpired          FAIL code=pass_expired   AUTH_RESULT_PASSWORD_EXPIRED (delayed)
//	AuthzFail            FAIL code=authz_fail     AUTH_RESULT_AUTHZ_FAILED (delayed)
//	TempFail             FAIL code=temp_fail      status UNAVAILABLE (not delayed)
//
//	lookup status        master socket            gRPC
//	OK                   PASS / USER              found = true
//	NotFound             NOTFOUND                 found = false
//	UserDisabled, PassExpired (PASS only) NOTFOUND found = false
//	TempFail             FAIL                     status UNAVAILABLE
//	Fail, AuthzFail      FAIL                     status PERMISSION_DENIED
//
// A temporary failure is a gRPC status rather than a fourth result value on
// purpose: "could not tell" must never be mistaken for "wrong password",
// and a client that only checks result == OK, or a generic gRPC retry
// policy, then does the right thing by default.
//
// # Roles and limits
//
// Authenticate, LookupPassdb and LookupUser are for every caller the
// listener accepts; the other RPCs need the admin role, and the addresses
// in RequestInfo are believed only from a trusted caller (roles.go,
// docs/operations.md §5). Every limit grpc-go leaves open is set from
// grpc { }: connections, streams per connection, message size, handshake
// time, keepalive, request time and the number of answers held for the
// failure delay. A client whose deadline is shorter than that delay gets
// all its answers at one moment (auth.go).
//
// # Reloads
//
// The Server outlives configuration reloads: its listener and TLS state
// stay, and the engine comes from a Backend the daemon swaps with
// SetBackend. A request holds its Backend until the engine has answered,
// and Backend.Drain lets the daemon wait for those requests before it
// closes the old engine's drivers, as it does for the socket servers.
package grpcserver
