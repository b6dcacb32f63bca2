package compare

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
)

// WriteTable prints the comparison: one row per scenario with both rates,
// the ratio against the target and both p99s, then the CPU each
// side used, then the notes.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "machine: %d × %s, %s, Linux %s, load %s at start\n", m.CPUs, m.CPUModel, m.Memory, m.Kernel, m.LoadAvg)
	fmt.Fprintf(&b, "servers: %s; %s (%s)\n", orNA(m.Dovecot, "Dovecot ?"), orNA(m.AuthdVers, "authd ?"), m.Go)
	s := r.Settings
	mode := "full"
	if s.Quick {
		mode = "quick"
	}
	pair, np := "(A, B)", ""
	for _, sc := range r.Scenarios {
		if !sc.PenaltyBaseline {
			pair, np = "(Dovecot, authd)", " no-penalty,"
		}
	}
	fmt.Fprintf(&b, "load:    %s run; AUTH PLAIN, %d conns × %d in flight,%s %d of %d users, %.1f s warm-up + %.1f s measured, %d × %s\n\n",
		mode, s.Conns, s.Depth, np, s.LoadUsers, s.Accounts, s.Warmup, s.Duration, s.Rounds, pair)

	var vsDovecot, vsSelf []ScenarioResult
	for _, sc := range r.Scenarios {
		if sc.PenaltyBaseline {
			vsSelf = append(vsSelf, sc)
		} else {
			vsDovecot = append(vsDovecot, sc)
		}
	}
	if len(vsDovecot) > 0 {
		if err := writeVersus(&b, vsDovecot, "Dovecot", "authd", func(sc ScenarioResult) *Side { return sc.Dovecot }); err != nil {
			return err
		}
		if err := writeFixed(&b, vsDovecot, s); err != nil {
			return err
		}
	}
	if len(vsSelf) > 0 {
		if len(vsDovecot) > 0 {
			b.WriteString("\n")
		}
		if err := writeSelf(&b, vsSelf, s.AttackAddrs); err != nil {
			return err
		}
	}
	var notes []string
	for _, sc := range r.Scenarios {
		for _, n := range sc.Notes {
			notes = append(notes, sc.Name+": "+n)
		}
		for _, sd := range []*Side{sc.Dovecot, sc.Baseline, sc.Authd} {
			if sd != nil && strings.HasPrefix(sd.Status, "error") {
				notes = append(notes, sc.Name+": "+sd.Status)
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nnotes:\n")
		for _, n := range notes {
			b.WriteString("  " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeVersus prints the rate table of scenarios whose side A is
// a(sc), named nameA, and its CPU table.
func writeVersus(b *strings.Builder, scs []ScenarioResult, nameA, nameB string, a func(ScenarioResult) *Side) error {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\t%[1]s auth/s\t%[2]s auth/s\tratio\ttarget\tp99 %[1]s\tp99 %[2]s\t\t\n", nameA, nameB)
	for _, sc := range scs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sc.Title, rate(a(sc)), rate(sc.Authd), ratioOf(sc), targetOf(sc),
			p99(a(sc)), p99(sc.Authd), verdictOf(sc))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	b.WriteString("\nCPU over the measured windows, in cores (server / backend / load generator / other processes):\n")
	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\t%s\t%s\t\n", nameA, nameB)
	for _, sc := range scs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", sc.Title, cores(a(sc)), cores(sc.Authd))
	}
	return tw.Flush()
}

// writeFixed prints the fixed-rate rounds: both servers' latency at
// shares of Dovecot's maximum rate, beside the throughput ratio, and the
// CPU (server and backend) each spent per login at that rate.
func writeFixed(b *strings.Builder, scs []ScenarioResult, s Settings) error {
	var any bool
	for _, sc := range scs {
		any = any || len(sc.Fixed) > 0
	}
	if !any {
		return nil
	}
	fmt.Fprintf(b, "\nFixed rate, open loop (latency from each request's scheduled send time; %.1f s warm-up + %.1f s, %d × (Dovecot, authd)):\n",
		s.FixedWarmup, s.FixedDuration, s.Rounds)
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\tratio\tof max\tauth/s\tp50 Dovecot\tp50 authd\tp99 Dovecot\tp99 authd\tp99.9 Dovecot\tp99.9 authd\tCPU µs/login Dovecot\tauthd\t\t\n")
	for _, sc := range scs {
		for _, fr := range sc.Fixed {
			d, a := fr.Dovecot, fr.Authd
			verdict := ""
			if fr.Met != nil {
				verdict = map[bool]string{true: "p99 ≤", false: "p99 >"}[*fr.Met]
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f %%\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sc.Title, ratioOf(sc), fr.Share*100, fr.Rate,
				fixedMS(d, d.Latency.P50), fixedMS(a, a.Latency.P50), fixedMS(d, d.Latency.P99), fixedMS(a, a.Latency.P99),
				fixedMS(d, d.Latency.P999), fixedMS(a, a.Latency.P999), cpuPerLogin(d), cpuPerLogin(a), verdict)
		}
	}
	return tw.Flush()
}

func fixedMS(fs *FixedSide, v float64) string {
	if strings.HasPrefix(fs.Status, "error") {
		return "error" // the notes say which
	}
	if fs.Status != "ok" {
		return fs.Status
	}
	return load.FormatMS(v)
}

// cpuPerLogin is the server's and backend's CPU per completed login at
// a fixed rate, in µs.
func cpuPerLogin(fs *FixedSide) string {
	// A process that exits during the window takes its CPU time with it
	// (Dovecot's idle auth-workers do), which can make the difference
	// negative: then there is no figure.
	if fs.Status != "ok" || fs.RPS <= 0 || fs.Cores[0] < 0 || fs.Cores[1] < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", (fs.Cores[0]+fs.Cores[1])/fs.RPS*1e6)
}

// writeSelf prints the scenarios that compare authd with its defence on
// (B) against itself without it (A), and what the attackers got.
func writeSelf(b *strings.Builder, scs []ScenarioResult, attackAddrs int) error {
	b.WriteString("authd against itself: A with penalty { enabled = no }, B with the brute-force defence on; no no-penalty,\n" +
		"each user from an address of its own; \"no delays\": B answers failures at once (client_max_delay = 0):\n")
	if err := writeVersus(b, scs, "A", "B", func(sc ScenarioResult) *Side { return sc.Baseline }); err != nil {
		return err
	}
	for _, sc := range scs {
		if !sc.Attack {
			continue
		}
		fmt.Fprintf(b, "%s: %d attacking addresses, %d × %d in flight; attackers A %s, B %s\n", sc.Title,
			attackAddrs, load.DefaultAttackConns, load.DefaultAttackDepth, attackers(sc.Baseline), attackers(sc.Authd))
	}
	return nil
}

func attackers(s *Side) string {
	switch {
	case len(s.Attackers) == 0:
		return "—"
	case s.RefusedShare == nil:
		return fmt.Sprintf("%.0f req/s, no probe answered", s.AttackRPS)
	}
	return fmt.Sprintf("%.0f req/s, %.1f %% refused", s.AttackRPS, *s.RefusedShare*100)
}

func ratioOf(sc ScenarioResult) string {
	if sc.Ratio > 0 {
		return fmt.Sprintf("%.2f×", sc.Ratio)
	}
	return "—"
}

func targetOf(sc ScenarioResult) string {
	var t []string
	if sc.TargetRatio > 0 {
		t = append(t, fmt.Sprintf("≥ %.3g×", sc.TargetRatio))
	}
	if sc.TargetP99 > 0 {
		t = append(t, fmt.Sprintf("p99 ≤ %v", sc.TargetP99))
	}
	if len(t) == 0 {
		return "—"
	}
	return strings.Join(t, ", ")
}

func verdictOf(sc ScenarioResult) string {
	switch {
	case sc.Met == nil:
		return ""
	case *sc.Met:
		return "met"
	}
	return "MISSED"
}

func orNA(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func rate(s *Side) string {
	if s.RPS > 0 {
		return fmt.Sprintf("%.0f", s.RPS)
	}
	return s.Status
}

func p99(s *Side) string {
	if s.RPS > 0 {
		return load.FormatMS(s.P99)
	}
	return "—"
}

func cores(s *Side) string {
	if s.RPS > 0 {
		return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", s.ServerCores, s.BackendCores, s.LoadCores, s.OtherCores)
	}
	return "—"
}

// WriteJSON writes the whole report, every round included.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
