// Package vars implements Dovecot's template languages as the auth process
// uses them: 2.4's `%{name | filter}` pipelines (Syntax24, the v24*.go
// files; docs/protocol.md §5.6.1, checked against testdata/golden24.json
// recorded from Dovecot 2.4.1) and, described below, 2.3's "%" variable
// language as used by
// the auth process (docs/protocol.md §5.6), the default_fields/override_fields
// templates built on it (docs/protocol.md §5.5, with the key:protected and key:remove
// suffixes of docs/protocol.md §2.5/§2.6), and the auth cache key derived from a backend's
// templates (docs/protocol.md §5.9).
//
// Templates are parsed once, at configuration load, into a list of nodes;
// expansion then only walks that list. Nothing is re-parsed per request and
// no regular expression is involved unless a template uses the rarely seen
// %{if;...;~;...} comparison.
//
// Compatibility notes (from Dovecot 2.3.19.1's source, and checked against
// a running 2.3.19.1 wherever its output can show it: see
// testdata/golden.json and the live test; the escaping rules cannot be seen
// that way):
//
//   - Values are escaped (by the SQL/LDAP escaper given to Expand) before the
//     modifiers run, and only for the variables Dovecot escapes: user names,
//     service, mechanism, password, session, local_name, client_id and the
//     %{passdb:...}/%{userdb:...} values. IPs, ports, pids, %!, %c, %k,
//     %{env:...}, %{hostname}, %{uid}, %{gid}, hash results and the
//     UNSUPPORTED_VARIABLE_x text are never escaped.
//   - An unknown variable expands to UNSUPPORTED_VARIABLE_<name>, without
//     modifiers applied; Dovecot then treats the whole expansion as failed
//     (a default_fields/override_fields template failing makes the lookup
//     fail), which ExpandChecked reports.
//   - %{pid} is the auth client's pid (%p), not the process's own pid: the
//     request table is searched before the built-in process variables.
//     Dovecot 2.3.19 was observed to expand both to "0" in passdb and
//     userdb templates, for AUTH and USER requests alike.
//   - %! is the passdb (or, in userdb lookups, userdb) id. Dovecot numbers
//     passdb modules, and passdbs with the same driver and args share one
//     module and so one id; a master passdb got its own.
//   - %h is never set by Dovecot's auth process (it is always empty there).
//   - %{domain_first}/%{domain_last} split at '@', not at '.': they are the
//     text between the first and the second '@' and the text after the last
//     '@'.
//   - format=hexuc produces lower-case hex in 2.3 (a Dovecot bug kept here);
//     format=base64url does not exist in 2.3 and is an error. Hash names
//     are lower case: %{MD5:user} expands to "" and fails. Arguments after
//     salt= are ignored. %{pkcs5:...} is PBKDF2-HMAC-SHA256 with 2048
//     rounds, the field name as default salt and a 336-byte output.
//   - The H and N modifiers take the width as modulus and the offset as
//     zero-padding width (%2.256Hn gives 00..ff); %1Hn is always "0". A
//     zero flag needs a width to pad to: %0Xn is just %Xn.
//   - Without a '.', a leading '-' is ignored: %-3u is %3u.
//   - %{if;...} compares with Go's POSIX regexp syntax for ~ and !~, close
//     to but not identical with glibc's regcomp(REG_EXTENDED); an
//     unescaped ':' ends its parameter list, as in Dovecot.
//
// Parse rejects syntax that Dovecot silently mangles (a '%' at the end of the
// template, an unterminated "%{", malformed hash or if arguments) and
// values Dovecot accepts but that can only be mistakes (widths above
// 1000000, more than 2^20 hash rounds). ParseLenient accepts everything and
// reproduces Dovecot's output for such input as far as it is defined (an
// unbalanced "%{a{b}" makes Dovecot read past the end of its string; here
// it swallows the rest of the template).
//
// Tests: testdata/golden.json holds outputs recorded from Dovecot 2.3.19.1
// (TestGolden compares against it; TestLiveDovecot re-records them when
// Dovecot is installed). Cache keys and the escape function cannot be
// observed through a running Dovecot and are tested from the source's
// rules.
package vars
