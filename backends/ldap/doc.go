// Package ldap is the LDAP passdb and userdb: it reads an existing
// Dovecot 2.3 dovecot-ldap.conf.ext unchanged and answers lookups from an
// LDAP directory (OpenLDAP is what the tests run against).
//
// # Configuration
//
// New(path) reads the file with the syntax of Dovecot's lib-settings
// (settings_read_nosection): `key = value`, '#' comments, a trailing '\'
// continuing a line (the pieces joined with one space, so
// `pass_attrs = a=b,\` + `  c=d` works), quoted values, $ENV:NAME,
// !include[_try]. Every key of Dovecot 2.3's db-ldap.c is accepted with
// Dovecot's defaults (default_pass_scheme = crypt, the posixAccount
// filters …). Accepted without effect: blocking, debug_level,
// userdb_warning_disable, sasl_realm; accepted with a warning:
// tls_cipher_suite (Go's TLS picks suites) and ldaprc_path. Refused as
// configuration errors rather than silently misread: ldap_version other
// than 3, sasl_mech other than EXTERNAL, and the DN-pointer forms
// (@field=attr, attr@field, %{ldap_ptr:…}), which need sub-searches.
//
// authd's own keys (Dovecot 2.3 would reject them, so use them only in a
// file authd alone reads):
//
//	authd_pool_size = 8            connections per pool (service, auth-bind)
//	authd_timeout = 10 secs        connect timeout and per-operation cap
//	authd_failback_interval = 30 secs
//
// # Attribute templates
//
// user_attrs, pass_attrs and iterate_attrs follow db_ldap_set_attrs:
// `ldapAttr`, `ldapAttr=field`, `ldapAttr=field=template` (%$ is the
// attribute's value; a template without '%' means template%$),
// `=field=template` (static; %{ldap:attr} and %{ldap:attr:default} read
// other attributes, the default used when the attribute is absent or has
// no value), `=field` (empty static value), `!ldapAttr` (fetched only for
// %{ldap:…}), and %{ldap_dn} for the entry's DN. All %-modifiers work on
// the LDAP variables (%L$). A template's attribute being absent means no
// field. Attribute names are matched case-insensitively.
//
// Multi-valued attributes, as Dovecot 2.3.19 handles them (there is no
// TAB-joining in 2.3; %{ldap_multi} arrived in 2.4): a passdb field, a
// template's %$ and %{ldap:…} use the first value with a warning; in the
// userdb, gid becomes the comma-separated list of all values and every
// other field keeps the first value with a warning; in iterate_attrs every
// value of "user" is one listed user.
//
// pass_attrs' "password" value is split with the strict {SCHEME} rule
// (docs/schemes.md §2.1) and default_pass_scheme fills in a missing prefix;
// "password_noscheme" always takes the default scheme.
//
// # Escaping
//
// Values substituted into pass_filter, user_filter and iterate_filter are
// escaped per RFC 4515 (EscapeFilter); values substituted into base and
// auth_bind_userdn per RFC 4514 (EscapeDN). Dovecot 2.3 uses one escaper
// (ldap_escape: `*,\#+<>;"()= ` and bytes >= 0x80 become \XX) for both;
// for any value Dovecot can carry the server receives the same assertion
// value and the same DN either way, but authd also escapes NUL and control
// characters, and each context gets exactly the escaping its grammar
// needs. A user name that makes a templated base an invalid DN (an empty
// %d) is "not found", not an error.
//
// # Passwords
//
// Three ways, as in Dovecot: (a) pass_attrs reads userPassword with the
// service identity (dn/dnpass, or SASL EXTERNAL with sasl_bind = yes) and
// the engine verifies it; (b) auth_bind = yes: the entry is searched with
// the service connection, then its DN is bound with the user's password
// on a separate pool of connections that carry nothing but user binds;
// (c) auth_bind_userdn: the DN comes from the template, nothing is
// searched. VerifyPass implements (b) and (c): invalidCredentials (49) is
// a wrong password, noSuchObject is an unknown user, an empty password is
// a wrong password without any bind (it would be an anonymous bind), and
// anything else — a timeout, a dead server — is an error.
//
// # Connections
//
// Lookups (pass_filter, user_filter searches) run on up to
// authd_pool_size service connections, each carrying any number of
// searches at once, matched to their replies by message id as Dovecot
// does on its one connection (mux.go): a search goes to the connection
// with the fewest in flight, and a new connection is made only while every
// open one is busy. Requests that arrive together share one write. A
// request that gives up (its context ends) abandons its search (RFC 4511
// §4.11) and leaves the connection to the others; a server that does not
// answer within authd_timeout, sends a Notice of Disconnection or
// something unreadable loses the connection, and every search on it fails
// with a network error — never "not found". Each such connection has one
// reader goroutine, stopped by Close.
//
// User binds (auth_bind) and listings run on two more pools of up to
// authd_pool_size connections, each carrying one operation at a time
// (a bind changes the connection's identity; a paged listing holds its
// cookie); callers beyond that wait for a free connection, bounded by
// their context. A cancelled request closes the connection it was using.
// A connection that fails at the network level is discarded together
// with its idle siblings (the server probably restarted). In every pool,
// an operation that failed at the network level on a connection already
// in use is retried once on a new one, and every operation's timeout is
// the request context's deadline capped by authd_timeout.
//
// With several URIs (uris or hosts), new connections try them in the
// order written, skipping for authd_failback_interval a server that just
// failed; connections to any server but the first are retired after the
// failback interval, so traffic returns to the first server once it is
// back. The cache key templates (PassCacheKey, UserCacheKey) come from
// base, the filters, auth_bind_userdn and the attribute templates'
// request variables (docs/protocol.md §5.9).
//
// Secrets: dnpass and user passwords never reach logs or errors; expanded
// filters are not logged (a filter may use %w); multi-value warnings name
// the attribute, never its value.
package ldap
