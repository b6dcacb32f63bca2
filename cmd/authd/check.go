package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// cmdCheck validates a configuration: the syntax and settings (every error
// at once, with file:line), then the drivers and mechanisms it names. It
// prints the effective auth configuration when all is well.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", defaultConfigPath, "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "c" })
	cfg, _, err := loadConfig(*cfgPath, explicit, stderr)
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
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
		return 1
	}
	if len(cfg.Ignored) > 0 {
		fmt.Fprintf(stderr, "# ignored settings of other Dovecot services: %s\n", strings.Join(cfg.Ignored, " "))
	}
	cfg.Dump(stdout)
	return 0
}
