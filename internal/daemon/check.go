package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Check validates the configuration at path ("" as for Run): the syntax
// and settings (every error at once, with file:line), then the drivers and
// mechanisms it names. It prints the effective auth configuration on
// stdout when all is well, and every problem on stderr; ErrInvalidConfig
// says there were problems.
func Check(path string, stdout, stderr io.Writer) error {
	cfg, _, err := loadConfig(path)
	if err != nil {
		printConfigErrors(stderr, err)
		return ErrInvalidConfig
	}
	n := 0
	report := func(err error) {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
			n++
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if eng, err := buildEngine(cfg, log); err != nil {
		report(err)
	} else {
		_ = eng.Close()
	}
	if _, err := buildMechs(cfg); err != nil {
		report(err)
	}
	if n > 0 {
		return ErrInvalidConfig
	}
	if len(cfg.Ignored) > 0 {
		fmt.Fprintf(stderr, "# ignored settings of other Dovecot services: %s\n", strings.Join(cfg.Ignored, " "))
	}
	cfg.Dump(stdout)
	return nil
}

// ErrInvalidConfig is returned by Check for a configuration with errors.
var ErrInvalidConfig = errors.New("invalid configuration")
