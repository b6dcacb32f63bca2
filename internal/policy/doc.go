// Package policy is the client of an auth policy server (weakforced,
// Nauthilus, …): Dovecot 2.3's auth_policy_* hook (docs/operations.md §7),
// speaking to the server exactly as Dovecot's auth process does, so that a
// policy server sees the same requests whether authd or Dovecot
// authenticates.
//
// The protocol: an HTTP POST to auth_policy_server_url with "?command=allow"
// (or "command=allow" appended when the URL ends in '&') asks whether an
// authentication may go on; "command=report" tells how one ended, with
// "success" and "policy_reject" added. The body is a JSON object built from
// auth_policy_request_attributes (key=value pairs, sorted by key; a key
// "a/b" puts b in an object a) with authd's %-variables, plus
// %{requested_username} and %{hashed_password}, and a "tls" boolean. The
// hashed password is H(nonce ‖ user ‖ NUL ‖ password) with
// auth_policy_hash_mech, cut to auth_policy_hash_truncate bits: enough for
// the server to count distinct passwords, too little to crack one. The
// answer is {"status":N,"msg":"…"}: N < 0 refuses (msg is the reason),
// N > 0 delays the request N seconds, 0 allows. A server that cannot be
// reached in time, or answers anything else, allows the request unless
// auth_policy_reject_on_fail is set; auth_policy_log_only logs verdicts
// without applying them.
//
// Where authd differs from Dovecot 2.3, on purpose:
//
//   - Attribute values are JSON-escaped as a whole after expansion, where
//     Dovecot escapes each variable and then applies modifiers and inserts
//     literal text unescaped. The bodies are the same except where Dovecot's
//     would not be valid JSON (a quote in literal text or in %{env:…}) or a
//     modifier or hash sees a character JSON escapes.
//   - An empty auth_policy_request_attributes gives {"tls":false}; Dovecot
//     sends {,"tls":false}. Keys nested deeper than one '/' and keys with
//     '%' are configuration errors (Dovecot builds odd objects from the
//     former and expands the latter).
//   - Reports leave through a bounded queue; when it is full a report is
//     dropped and counted rather than held in memory.
//   - A delay is capped at 5 minutes (Dovecot's cap for delay_until).
package policy
