// Package pam is the PAM passdb: it hands the user name and password to
// libpam (through github.com/msteinert/pam/v2) and lets the system's PAM
// stack decide, as Dovecot 2.3's passdb-pam.c does:
//
//	passdb {
//	  driver = pam
//	  args = [session=yes] [setcred=yes] [failure_show_msg=yes] [max_requests=N] [cache_key=KEY] [workers=N] [SERVICE]
//	}
//
// # Builds
//
// libpam needs cgo and, at build time, libpam's headers (Debian
// libpam0g-dev; at run time only libpam0g, which every Debian has). The
// real driver is compiled with the pam build tag and cgo: `make build`
// does that when it finds the headers (CGO_ENABLED=1 go build -tags pam),
// and says so when it falls back to a build without them. A plain `go
// build`, which must work on a machine without the headers, and `make
// build-static` (pure Go) leave PAM out; then New returns an error
// wrapping ErrNotBuilt and backends.ErrConfig, so `authd check` reports
// the passdb block instead of the daemon failing later. Available tells
// which build this is.
//
// # Arguments
//
// SERVICE (last word; default "dovecot") is the PAM service, i.e. the file
// in /etc/pam.d. It may contain %-variables: `args = %s` uses the
// request's service (imap, pop3, smtp …), "*" is Dovecot's old spelling
// of %Ls. The expanded name must look like a file name ([A-Za-z0-9._+-],
// no leading dot) or the request fails as a temporary failure. Note that
// with %s the client picks the service: any local process that may
// connect to an auth socket can ask for service=login or service=sudo, as
// with Dovecot. Prefer a fixed service name.
//
// session=yes runs pam_open_session and pam_close_session after a
// successful check, setcred=yes runs pam_setcred(PAM_ESTABLISH_CRED)
// (never deleted afterwards, as in Dovecot, so that Kerberos tickets and
// the like stay for the mail processes). Beware: a module whose setcred
// changes process credentials (pam_group calls setgroups) changes them
// for the whole authd process, not for an isolated worker process as in
// Dovecot.
//
// failure_show_msg=yes returns PAM's own message as reason= on failure:
// the last PAM_ERROR_MSG a module sent (pam_unix's "Your account has
// expired; please contact your system administrator."), else the last
// password prompt text, which is all Dovecot 2.3 ever uses.
//
// max_requests=N (default 100) has Dovecot's meaning: a worker that has
// run N transactions is replaced by a new one (see pool). workers=N
// (authd's own; default 8) bounds the PAM transactions running at once.
// cache_key=KEY is returned by CacheKey for the engine's auth cache; as in
// Dovecot, a PAM passdb without it is not cached. blocking=yes is accepted
// and ignored.
//
// # The transaction
//
// One request is one transaction on one worker thread: pam_start(service,
// user), PAM_RHOST (the client IP, if any), PAM_RUSER (the user) and
// PAM_TTY "dovecot" (kept so that pam_access rules written for Dovecot
// still match), pam_authenticate, [pam_setcred], pam_acct_mgmt,
// [pam_open_session, pam_close_session], PAM_USER read back as the user=
// field (a module may canonicalise the name), pam_end. The conversation
// answers PAM_PROMPT_ECHO_OFF with the password and PAM_PROMPT_ECHO_ON
// with the user name; messages are collected for failure_show_msg; binary
// prompts end the conversation with PAM_CONV_ERR.
//
// pam_authenticate and pam_acct_mgmt get PAM_DISALLOW_NULL_AUTHTOK
// (Dovecot passes 0): Debian's common-auth has pam_unix "nullok", and an
// account without a password must not open a mailbox with an empty one.
// The shadow passdb refuses such accounts too.
//
// # Results
//
// VerifyPass (backends.Verifier) maps the PAM status, and the step that
// returned it, to the three outcomes plus the account states:
//
//	PAM_SUCCESS                                  backends.Found (the password is right)
//	PAM_USER_UNKNOWN                             backends.Unknown
//	PAM_AUTH_ERR, PAM_MAXTRIES, PAM_PERM_DENIED  backends.Mismatch, from pam_authenticate
//	PAM_ACCT_EXPIRED, PAM_NEW_AUTHTOK_REQD,      backends.Expired (code=pass_expired)
//	  PAM_AUTHTOK_EXPIRED, PAM_CRED_EXPIRED
//	PAM_PERM_DENIED, PAM_AUTH_ERR after a        backends.Disabled (code=user_disabled)
//	  successful pam_authenticate (pam_access,
//	  pam_nologin, pam_time in the account stack)
//	anything else (PAM_AUTHINFO_UNAVAIL,         error: could not tell (temp_fail)
//	  PAM_SYSTEM_ERR, PAM_SERVICE_ERR, PAM_ABORT,
//	  PAM_CRED_INSUFFICIENT, PAM_CONV_ERR …)
//
// Dovecot agrees on the first rows and on PAM_ACCT_EXPIRED and
// PAM_NEW_AUTHTOK_REQD → pass_expired. It differs on purpose: Dovecot
// answers every other status with "password mismatch", which turns an
// unreachable sssd/LDAP/Kerberos behind PAM into failed logins counted
// against the user, where authd's rule is that "could not tell" is never
// a wrong password (docs/architecture.md, house rule 1); pam_unix's
// PAM_AUTHTOK_EXPIRED (password expired and inactivity period over) is an
// expired password here, a mismatch there; and a correct password refused
// by the account stack is user_disabled here, a mismatch there.
//
// pam_unix can only check other users' passwords when authd runs as root
// or in group shadow; otherwise its unix_chkpwd helper answers
// PAM_AUTH_ERR for everyone, which looks like wrong passwords.
//
// LookupPass answers backends.NoCredentials: PAM cannot hand out
// passwords, so credentials lookups (doveadm auth lookup, non-plaintext
// mechanisms) fail with Dovecot's "Configured passdbs don't support
// credentials lookups".
//
// # Concurrency
//
// Transactions run on a pool of workers, each locked to an OS thread (see
// pool). A request waits for a free worker only as long as its context
// lives; a request whose context ends while its transaction runs returns
// at once, and the transaction still runs to pam_end on its worker.
// Passwords are never logged; PAM's messages and status texts are.
//
// Size workers for the stack's slowest path. pam_unix waits about 2
// seconds after every failure (measured: 1.7 s for a wrong password, 0.17
// s with its nodelay option), and that wait holds a worker: with the
// default 8 workers, 4 failures a second saturate the passdb. authd
// applies auth_failure_delay itself, outside the pool, so a service file
// meant for authd should say `auth required pam_unix.so nodelay`.
package pam
