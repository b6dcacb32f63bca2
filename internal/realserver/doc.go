// Package realserver starts private instances of the real servers authd
// works with — mariadbd, slapd, Dovecot 2.3, Dovecot 2.4 in a Debian 13
// root — and authd itself, as child processes, and stops them again. It is
// the one implementation of the recipes in docs/testing.md (§2 MariaDB, §3
// slapd, §4 Dovecot, §4.6 the Debian 13 root and its chroot mounts, §7 the
// pitfalls of a harness), shared by internal/testenv (the tests' wrappers,
// which turn errors into skips and failures and stop servers at cleanup)
// and by the authd-bench comparison harness (a command: context, errors
// and explicit Stop).
//
// Every instance is private: its own directory (Instance.Dir), free
// loopback ports, its own unix sockets, and never the system configuration
// (/etc/mysql, /etc/ldap, /etc/dovecot). Each server is a direct child in
// its own process group, waited for by a goroutine so that it never lingers
// as a zombie, and stopped by signalling the whole group.
//
// A launcher returns an error wrapping ErrUnavailable when the server
// cannot run on this machine at all (a binary, a system user or root is
// missing): tests skip on it, the harness reports the scenario as n/a.
// Settings that only a benchmark wants (a larger InnoDB buffer pool, more
// connections, a larger LDAP map) are options whose zero values are the
// small defaults tests use.
package realserver
