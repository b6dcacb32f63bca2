package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
)

// loadConfig loads path; an empty path means DefaultConfigPath, or the
// demo configuration when that file does not exist. demo reports which.
func loadConfig(path string) (cfg *config.Config, demo bool, err error) {
	if path == "" {
		if _, err := os.Stat(DefaultConfigPath); err != nil {
			cfg, err := demoConfig()
			return cfg, true, err
		}
		path = DefaultConfigPath
	}
	cfg, err = config.Load(path)
	return cfg, false, err
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cfg.Auth.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: boundAttr}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Log values a client chooses are bounded before they reach a line: user
// names to 64 bytes as Dovecot cuts them, any other string to maxLogValue.
// Quoting and escaping (a name with a newline or a quote cannot forge a
// line or a field) is the handlers' own.
const maxLogValue = 1024

func boundAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindString {
		return a
	}
	v := a.Value.String()
	switch {
	case a.Key == "user" || a.Key == "orig_user" || a.Key == "master_user":
		a.Value = slog.StringValue(engine.LogName(v))
	case len(v) > maxLogValue:
		a.Value = slog.StringValue(v[:maxLogValue] + "…")
	}
	return a
}

func printConfigErrors(w io.Writer, err error) {
	if list := config.AsErrorList(err); len(list) > 0 {
		for _, e := range list {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err.Error())
}
