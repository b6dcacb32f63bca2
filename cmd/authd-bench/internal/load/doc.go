// Package load is authd-bench's load generator: it measures logins per
// second and latency percentiles of an auth server that speaks Dovecot's
// protocols (authd, or Dovecot 2.3's own auth process), on the machine it
// runs on. It is tooling, not part of authd: nothing in the daemon imports
// it.
//
// A run opens Config.Conns connections to a unix socket or a loopback TCP
// address (anything else is refused: see ParseTarget) and keeps
// Config.Depth requests in flight on each, pipelined as Dovecot's login
// processes do. It optionally authenticates every user once (WarmAll, to
// fill an auth cache), then runs for Warmup, which is not counted, then for
// Duration, the measured window. Every run ends by itself: the window is
// bounded, the optional request budget stops it earlier, and requests still
// unanswered Timeout after the window are given up.
//
// Requests go to:
//
//   - the client protocol (docs/protocol.md §1): AUTH PLAIN (initial
//     response), LOGIN (two CONTs, as Postfix does it), SCRAM-SHA-1 and
//     SCRAM-SHA-256 (client proof and server signature checked);
//   - the master protocol (docs/protocol.md §2): USER lookups;
//   - gRPC Authenticate, with package grpcload.
//
// Which protocols a run may use is the Registry in Config.Protocols, built
// by the caller (Builtin, plus grpcload.Protocol in the command): nothing is
// registered in package state.
//
// Every outcome is read from the server's reply on the protocol itself —
// OK / FAIL / FAIL code=temp_fail on the client protocol, USER / NOTFOUND /
// FAIL on the master protocol, the result or status code of gRPC — never
// from a server's log. Users are generated (user00001@example.com /
// pw00001, …) or read from a file; a share of the requests can carry a
// wrong password (or, for USER, an unknown user). Outcomes are counted as
// ok, fail, tempfail and errors; latencies go into a log-linear Histogram
// (≤ 0.8 % relative error) from which p50/p90/p99 and the exact maximum are
// reported, as text or JSON.
//
// With Config.Rate the load is open-loop instead: requests go out on a
// fixed schedule spread over the connections, answered or not, and each
// latency counts from the request's scheduled send time, so that a stall
// of the server (or of the generator) shows in every request that should
// have been sent during it (openloop.go). The report adds p99.9 and the
// generator's own send lag.
//
// RunAttack runs such a load beside a brute-force attack: attackers guess
// passwords from many addresses (AttackerAddr) while the users log in,
// each from an address of its own (UserAddr), and the report gives the
// users' rate and latency and the share of attacker requests the server
// refused, estimated from probes with the right password (a refusal
// looks exactly like a wrong password on the wire).
//
// One goroutine serves each connection: it reads a batch of replies,
// issues the next requests into a buffer and writes them with one syscall,
// so the generator needs a small share of the CPU it shares with the
// server under test.
package load
