package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/authd-project/authd/internal/config"
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
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
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
