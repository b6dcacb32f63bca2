// Package daemon is authd's server process: it loads the configuration
// (or the built-in demo), builds an instance from it (the drivers, the
// engine, one protocol server per listener), opens the unix sockets, the
// gRPC listener and the metrics endpoint, reloads on request and shuts
// down gracefully.
//
// A reload builds a complete new instance first; only when everything in
// it could be built are the sockets switched over to it, and the old
// instance drains its requests in the background, as Dovecot restarts its
// auth process on reload. Sockets whose path did not change are kept, so
// clients never see them vanish. A configuration with errors is rejected
// whole and the running one keeps serving.
//
// The drivers are wired in drivers.go, in literal maps (no registration at
// init time): that is the one place a new passdb or userdb driver is
// named (docs/architecture.md §Adding a driver).
package daemon
