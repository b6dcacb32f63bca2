// Package config reads authd's configuration, written in Dovecot's own
// configuration syntax so that an existing dovecot.conf and its auth files
// load unchanged (docs/architecture.md §Configuration): Dovecot 2.3's, or
// Dovecot 2.4's when the file's first setting is dovecot_config_version
// (build24.go, docs/operations.md §2.1). Both fill the same Config;
// Config.Syntax says which template language its templates are in.
//
// The text is read by internal/conffile, the one reader of Dovecot's
// settings-file syntax: it yields a tree of nodes (settings, sections,
// include markers, positions) and leaves `<file` and `$name` values
// unresolved, because only this package knows whether a value is used (an
// ignored `ssl_key = </etc/ssl/…` must not be opened) and what `$name`
// means at that point of the file. Load / LoadBytes build the typed Config
// from that tree: authd's auth settings, passdb/userdb blocks, the
// `service auth` sockets, authd's own grpc { } and metrics { } sections.
// Every setting of Dovecot's other services is accepted, recorded in
// Config.Ignored and otherwise left alone; a name Dovecot does not know
// either is an error.
//
// Values follow Dovecot's rules exactly (sizes, time intervals, booleans,
// octal modes); where authd deliberately differs, the code says so. All
// problems are collected into an *ErrorList, each with its file:line, so an
// operator sees every mistake at once (`authd check`).
//
// Deliberate differences from Dovecot 2.3 (tests pin each one):
//
//   - `type [label] { key = value }` and `type [label] { }` on one line are
//     accepted (testdata/design-sample.conf uses them); Dovecot rejects them.
//     This and the reader's other choices are listed in internal/conffile.
//   - auth_mechanisms may also be separated by commas.
//   - A `<file` value loses its trailing newlines (Dovecot keeps them).
//   - Checks Dovecot's auth process makes only at startup (unknown
//     mechanism, ANONYMOUS without auth_anonymous_username, pass=yes on the
//     last passdb, no passdb) are configuration errors here.
//   - Auth features authd lacks are errors rather than silently ignored:
//     GSSAPI/NTLM/OTP mechanisms, auth settings or passdb/userdb inside
//     protocol { } (Dovecot runs a per-protocol auth instance for those),
//     inet_listener in service auth.
//   - auth_policy_* values Dovecot checks only when a request is made (the
//     URL, the API header, auth_policy_request_attributes' syntax and
//     variables) are checked at load; see internal/policy for the rest.
//   - Only the names of ignored settings are checked, not their values.
//   - Default sockets: as Dovecot's `service auth` defaults but without
//     token-login/tokenlogin and without chown to $default_internal_user.
package config
