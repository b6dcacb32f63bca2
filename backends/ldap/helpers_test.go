package ldap

import (
	"log/slog"
	"os"
	"testing"
)

// nil2log is a logger that drops everything.
func nil2log() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testLog shows the driver's log on stderr when AUTHD_LDAP_DEBUG=1, for
// debugging a failing test without cluttering normal (or -v) runs.
func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("AUTHD_LDAP_DEBUG") != "1" {
		return nil2log()
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
