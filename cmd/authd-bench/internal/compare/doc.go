// Package compare runs authd and Dovecot 2.3's auth process side by side on
// one machine, with the same data, the same configuration and the same
// load, and reports their rates and latencies scenario by scenario: the
// logic behind `authd-bench compare` and `make bench-compare`.
//
// It builds the data once (10,000 users with {PLAIN}, {SHA512-CRYPT} and
// {SSHA} passwords, hashed with authd's own schemes package and kept in a
// data directory between runs), starts a private mariadbd, PostgreSQL
// cluster and slapd, or writes an SQLite file, when a scenario needs them,
// and for each scenario starts a private Dovecot and
// an authd whose auth settings are the very same text (authd reads
// Dovecot's syntax). Every server is started by internal/realserver, the
// launchers the tests use too (docs/testing.md §2–§4 and §8.3), with the larger
// settings a benchmark wants passed as options. The load generator
// (package load) then runs against Dovecot, then authd, Rounds times
// (A B A B), with no-penalty on both and auth_failure_delay = 0. Cache
// scenarios first authenticate every user once on each server and check
// with CACHE-FLUSH that an entry exists.
//
// Two scenarios compare authd with itself instead (Scenario.PenaltyBaseline,
// issue 15): side A runs with penalty { enabled = no }, side B with its
// brute-force defence, each user logging in from an address of its own
// and without no-penalty. One measures what the defence costs; two run
// the load beside an attack from 1000 addresses (load.RunAttack), with
// authd's failure delays and without them, and report the users' p99 and
// the share of attacker requests refused.
//
// Everything the harness learns about a server comes from its interfaces,
// not its logs: outcomes from the protocol replies, cache use from
// CACHE-FLUSH's count, authd's readiness from its /readyz and a handshake,
// and whether authd can run a scenario at all from the exit status of
// "authd check". Logs are only shown, when something fails.
//
// Each measurement also samples the CPU time of the server's process group,
// of the backend and of the load generator over the measured window, and,
// when asked, records a perf profile of the server: a scenario's limit
// (one saturated Dovecot auth process, the backend, or the shared cores) is
// read from those numbers.
//
// A scenario whose configuration authd refuses (a passdb driver it does
// not have yet) is reported as "n/a (config refused)"; one whose backend
// cannot start (not installed, not root) as "n/a (…)". Nothing here needs
// a Go toolchain or a test binary: operators run the command on the
// machine they are sizing.
package compare
