// Package nsstest gives a test process a system user that only an NSS
// module knows, without touching /etc/nsswitch.conf, /etc/passwd or any
// other file other programs on the machine rely on.
//
// Build compiles a one-user NSS module ("authdtest", with the C compiler
// cgo uses) into a private directory. Use, called in the process that is
// to see the user, loads that module and points the process's own passwd
// database at "files authdtest" with glibc's __nss_configure_lookup, the
// in-process override glibc's own NSS tests use. glibc then finds the
// module by its soname among the loaded objects, so no library path
// changes either. The override lasts for the life of the process and
// cannot be undone: call Use in a child process (the test binary run
// again for one test) so that the other tests keep the system's
// configuration.
//
// The user is what sssd or nss-ldapd would provide on a real site: NSS
// answers for it, and /etc/passwd has no line for it.
//
// It needs cgo; without it the package is empty.
package nsstest
