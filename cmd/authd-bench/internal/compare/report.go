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
	fmt.Fprintf(&b, "load:    %s run; AUTH PLAIN, %d conns × %d in flight, no-penalty, %d of %d users, %.1f s warm-up + %.1f s measured, %d × (Dovecot, authd)\n\n",
		mode, s.Conns, s.Depth, s.LoadUsers, s.Accounts, s.Warmup, s.Duration, s.Rounds)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tDovecot auth/s\tauthd auth/s\tratio\ttarget\tp99 Dovecot\tp99 authd\t\t")
	for _, sc := range r.Scenarios {
		target := "—"
		if sc.TargetRatio > 0 {
			target = fmt.Sprintf("≥ %.3g×", sc.TargetRatio)
			if sc.TargetP99 > 0 {
				target += fmt.Sprintf(", p99 ≤ %v", sc.TargetP99)
			}
		}
		ratio, verdict := "—", ""
		if sc.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", sc.Ratio)
		}
		if sc.Met != nil {
			verdict = "met"
			if !*sc.Met {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sc.Title, rate(sc.Dovecot), rate(sc.Authd), ratio, target,
			p99(sc.Dovecot), p99(sc.Authd), verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	b.WriteString("\nCPU over the measured windows, in cores (server / backend / load generator / other processes):\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tDovecot\tauthd\t")
	for _, sc := range r.Scenarios {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", sc.Title, cores(sc.Dovecot), cores(sc.Authd))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var notes []string
	for _, sc := range r.Scenarios {
		for _, n := range sc.Notes {
			notes = append(notes, sc.Name+": "+n)
		}
		for _, sd := range []*Side{sc.Dovecot, sc.Authd} {
			if strings.HasPrefix(sd.Status, "error") {
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
