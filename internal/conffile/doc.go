// Package conffile reads Dovecot's settings-file syntax into a generic
// tree. It is the one reader behind authd's main configuration
// (internal/config, Dovecot's dovecot.conf) and the auth driver files
// dovecot-sql.conf.ext (backends/sql) and dovecot-ldap.conf.ext
// (backends/ldap); those packages keep only their typed layer: which keys
// exist, defaults, and what a value means.
//
// # What it reads
//
// Lines of `key = value` (quotes removed the way Dovecot removes them),
// `type [label] {` … `}` sections, `#` comments, `\` line continuation,
// `!include` / `!include_try` with globs and {a,b} alternatives resolved
// against the including file's directory, and in the main configuration
// `<file` and `$name` values, which are kept unresolved (ValueFile,
// ValueVariable) because only the typed layer knows whether a value is
// used (an ignored `ssl_key = </etc/ssl/…` must not be opened) and what
// `$name` means at that point of the file. The result is a tree of Nodes
// with positions (file:line), include markers, every error found (not
// only the first: Dovecot stops at the first) and warnings.
//
// The value parsers both kinds of file share live here too: sizes, time
// intervals, booleans, octal modes, numbers, $ENV: and $name expansion.
//
// # Two Dovecot readers, one reader here
//
// Dovecot 2.3 reads the main configuration with src/config/config-parser.c
// and the ext files with lib-settings (settings_read_nosection; values with
// parse_setting_from_defs). Before this package authd had three readers
// that disagreed with each other and with Dovecot. Each divergence is now
// decided once, as Dovecot 2.3 does; where its two readers differ in a way
// real files notice, an Options field selects the ext-file rule for that
// one point (ExtFile sets them all). Tests pin every line of this table:
// the main-configuration cases against the real doveconf (doveconf_test.go),
// the ext-file cases with unit tests (ext_test.go).
//
//	divergence                        Dovecot 2.3                                   here
//	\n, \t inside quotes              the letter (str_unescape), both readers       the letter
//	'\' on a file's last line         dropped at the end of the main file;          the same, with a warning
//	                                  continues on the including file's next
//	                                  line at the end of an included one
//	missing '}'                       main: error; ext: silently accepted           the same (UnclosedSectionOK: warning)
//	!include inside a section         followed; its lines belong to the section,    the same
//	                                  and its '}' can close the includer's one
//	time units                        settings_get_time (abbreviations of secs,     ParseDuration everywhere (authd's
//	                                  mins, hours, days, weeks, msecs)              own ldap authd_* keys too)
//	comment/blank line inside a       main: ends the continued line, which is       the same (ContinueAcrossComments)
//	continued line                    dropped; ext: skipped, the line goes on
//	<file, $name                      main only; ext: literal, $ENV:NAME            the same (LiteralValues)
//	                                  expanded in unquoted values
//	order of glob matches             main: ascending; ext: descending              the same (ReverseGlobOrder)
//	include loop                      error                                         error (paths compared absolute)
//	!include_try, unreadable match    ignored                                       ignored
//	value `"` alone                   empty                                         empty
//	'#' right after a word            comment, with a warning                       the same
//	section header                    main: `type [label|"label"] {` and nothing    main's rule for both kinds, plus
//	                                  after '{'; ext: `type [label] {`, text        authd's one-line `type { k = v }`
//	                                  after '{' ignored, no quoted label            (sections of ext files are unused)
//	booleans                          main: yes, y, 1, no; ext: yes, no             ParseBool, ParseExtBool
//	numbers                           main: decimal digits; ext: sscanf %i          ParseUint32, ParseExtUint
//	one CR before LF                  dropped                                       dropped
//	line of only '\' in a             main: adds nothing; ext: adds a space         adds nothing
//	continuation                      (and reads before its buffer)
//
// Deliberate differences from both Dovecot readers: every error is
// reported, not only the first; a continued line's position is its first
// line (Dovecot names the last); a NUL byte is an error (Dovecot's C
// strings would cut the line); devices and FIFOs are not included;
// `type { }` and `type { key = value }` on one line are accepted
// (internal/config/testdata/design-sample.conf uses them; Dovecot says
// "Garbage after '{'").
//
// # Bounds
//
// The reader is fed hand-edited and fuzzed input. It bounds line length,
// file size, include depth, section depth and {a,b} expansion, detects
// include loops and never panics.
//
// # Dovecot 2.4
//
// Version24 switches on the lexical changes of Dovecot 2.4's config-parser.c:
// isspace() blanks, quoted keys (Node.KeyQuoted) and `group @name label {`
// (Node.Group); Node.Quoted keeps whether a value or label was quoted,
// which 2.4 uses to tell an empty value from an unset one. The rest of
// 2.4 is meaning, not syntax, and is left to the typed layer: named
// filters (`passdb passwd-file { }`, `mysql host { }` are ordinary labelled
// sections here), `fields { }` lists, `dovecot_config_version` having to
// be the first setting, `$SET:name` instead of `$name` (a ValueVariable
// either way), and `%{user | lower}` templates inside values.
package conffile
