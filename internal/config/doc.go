// Package config reads authd's configuration, written in Dovecot 2.3's own
// configuration syntax so that an existing dovecot.conf and its auth files
// load unchanged (design.md §Configuration).
//
// It has two layers:
//
//   - Parse / ParseFile turn the text into a tree of Nodes, following
//     Dovecot 2.3's config parser line by line: `key = value` (quotes
//     removed the way Dovecot removes them), `type [label] {` … `}`,
//     `#` comments, `\` line continuation, `!include` / `!include_try`
//     with globs resolved against the including file's directory, and
//     `<file` / `$name` values, which are kept unresolved because only the
//     typed layer knows whether a value is used (an ignored
//     `ssl_key = </etc/ssl/…` must not be opened) and what `$name` means at
//     that point of the file.
//   - Load / LoadBytes build the typed Config from the tree: authd's auth
//     settings, passdb/userdb blocks, the `service auth` sockets, authd's own
//     grpc { } and metrics { } sections. Every setting of Dovecot's other
//     services is accepted, recorded in Config.Ignored and otherwise left
//     alone; a name Dovecot does not know either is an error.
//
// Values follow Dovecot's rules exactly (sizes, time intervals, booleans,
// octal modes); where authd deliberately differs, the code says so. All
// problems are collected into an *ErrorList, each with its file:line, so an
// operator sees every mistake at once (`authd check`).
//
// Deliberate differences from Dovecot 2.3 (tests pin each one):
//
//   - `type [label] { key = value }` and `type [label] { }` on one line are
//     accepted (design.md's sample uses them); Dovecot rejects them.
//   - auth_mechanisms may also be separated by commas.
//   - A `<file` value loses its trailing newlines (Dovecot keeps them).
//   - Checks Dovecot's auth process makes only at startup (unknown
//     mechanism, ANONYMOUS without auth_anonymous_username, pass=yes on the
//     last passdb, no passdb) are configuration errors here.
//   - Auth features authd lacks are errors rather than silently ignored:
//     GSSAPI/NTLM/OTP mechanisms, auth_policy_server_url, auth settings or
//     passdb/userdb inside protocol { } (Dovecot runs a per-protocol auth
//     instance for those), inet_listener in service auth.
//   - Only the names of ignored settings are checked, not their values.
//   - Default sockets: as Dovecot's `service auth` defaults but without
//     token-login/tokenlogin and without chown to $default_internal_user.
//
// The parser is fed untrusted-ish input (configuration edited by hand,
// fuzzed in tests), so it bounds line length, include depth, section depth
// and file size, detects include loops and never panics.
package config
