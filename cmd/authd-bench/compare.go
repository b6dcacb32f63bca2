package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/authd-project/authd/cmd/authd-bench/internal/compare"
)

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o compare.Options
	fs.StringVar(&o.Authd, "authd", "bin/authd", "authd binary to compare (make build)")
	fs.BoolVar(&o.Quick, "quick", false, "a few seconds per scenario: 0.5 s warm-up + 2 s, one Dovecot/authd pair, load over 1000 users")
	scen := fs.String("scenarios", "", "comma-separated scenario names or globs (default all): "+strings.Join(compare.ScenarioNames(), ", "))
	fs.IntVar(&o.Accounts, "accounts", 10000, "users in the data")
	fs.IntVar(&o.LoadUsers, "load-users", 0, "users the load draws from (0: all; -quick: 1000)")
	fs.StringVar(&o.DataDir, "data", "", "keep the generated accounts (SHA512-CRYPT hashes take a few seconds) in this directory and reuse them")
	fs.StringVar(&o.WorkDir, "work", "", "directory for the server instances (default: a temporary one, removed at the end)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temporary work directory (configs and logs)")
	fs.DurationVar(&o.Duration, "t", 0, "measured duration per round and server (default 8s, -quick 2s)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "warm-up per round and server (default 2s, -quick 0.5s)")
	fs.IntVar(&o.Rounds, "rounds", 0, "Dovecot/authd pairs per scenario, A B A B (default 2, -quick 1)")
	fs.IntVar(&o.Conns, "c", 8, "connections")
	fs.IntVar(&o.Depth, "d", 8, "requests in flight per connection")
	fs.IntVar(&o.AttackAddrs, "attack-addrs", 0, "attacking addresses of the attack scenarios (default 1000)")
	fixed := fs.String("fixed", "25,50", "after each scenario's throughput rounds, measure both servers open-loop at these percentages of Dovecot's maximum rate (\"none\": skip)")
	fs.DurationVar(&o.FixedDuration, "fixed-t", 0, "measured duration of each fixed-rate round (default 5s, -quick 2s)")
	fs.StringVar(&o.PerfDir, "perf", "", "record a perf profile of each server's last round into this directory")
	jsonOut := fs.String("json", "", "also write the full report (every round) as JSON to this file")
	quiet := fs.Bool("q", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "authd-bench compare: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := parseShares(*fixed, &o); err != nil {
		fmt.Fprintf(stderr, "authd-bench compare: -fixed: %v\n", err)
		return 2
	}
	if *scen != "" {
		o.Scenarios = strings.Split(*scen, ",")
	}
	if !*quiet {
		o.Progress = stderr
	}
	rep, err := compare.Run(ctx, o)
	if rep != nil {
		if werr := rep.WriteTable(stdout); werr != nil && err == nil {
			err = werr
		}
		if *jsonOut != "" {
			if werr := writeJSONFile(*jsonOut, rep.WriteJSON); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "authd-bench compare: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "authd-bench compare: %v\n", err)
		return 1
	}
	return 0
}

// parseShares reads -fixed: percentages separated by commas, or "none".
func parseShares(s string, o *compare.Options) error {
	s = strings.TrimSpace(s)
	if s == "none" || s == "" {
		o.NoFixed = true
		return nil
	}
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "%")), 64)
		if err != nil || !(v > 0 && v <= 200) {
			return fmt.Errorf("%q: want percentages in (0, 200], or none", f)
		}
		o.FixedShares = append(o.FixedShares, v/100)
	}
	return nil
}
