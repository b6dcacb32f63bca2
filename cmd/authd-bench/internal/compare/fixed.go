package compare

import (
	"context"
	"fmt"
	"strings"

	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
)

// Latency at a fixed offered load (issue 20): after a scenario's
// throughput rounds, both servers get the same open-loop load (load.Config
// Rate) at fixed shares of Dovecot's own maximum rate in that scenario,
// Dovecot then authd, Rounds times, and the report sets their latency
// percentiles side by side. At a rate both can serve, the percentiles say
// how long a login waits, which the closed-loop rounds cannot: there each
// server has 64 requests queued, so its latency is mostly its own queue.

// fixedDepth bounds the requests in flight per connection in the fixed-rate
// rounds: high enough that a server falling behind shows as latency, not
// as requests the generator declined to send.
const fixedDepth = 1024

// FixedRate is one fixed-rate comparison of a scenario.
type FixedRate struct {
	// Share is the fraction of Dovecot's maximum rate (its mean over the
	// scenario's throughput rounds) offered to both servers: Rate.
	Share   float64    `json:"share"`
	Rate    float64    `json:"rate"`
	Dovecot *FixedSide `json:"dovecot"`
	Authd   *FixedSide `json:"authd"`
	// Met: authd's p99 at most Dovecot's; nil when a side is missing.
	Met *bool `json:"p99_met,omitempty"`
}

// FixedSide is one server at one fixed rate, over every round.
type FixedSide struct {
	Status string `json:"status"`
	// Latency over every request of every round (from each request's
	// scheduled send time), and the generator's send lag.
	Latency load.Latency `json:"latency_ms"`
	LagP99  float64      `json:"send_lag_p99_ms"`
	// RPS is the mean completed rate; Unsent and Failed add up what was
	// not sent or not answered OK (any is a note).
	RPS    float64 `json:"auth_per_sec"`
	Unsent int64   `json:"unsent,omitempty"`
	Failed int64   `json:"not_ok,omitempty"`
	// Cores as in Side: server, backend, load generator, other processes.
	Cores  [4]float64     `json:"cores"`
	Rounds []*load.Result `json:"rounds,omitempty"`

	hist, lag load.Histogram
}

// add records one round.
func (fs *FixedSide) add(m *measurement) {
	r := m.legit
	fs.Rounds = append(fs.Rounds, r)
	fs.hist.Merge(r.Histogram())
	fs.lag.Merge(r.LagHistogram())
	fs.Unsent += r.Unsent
	fs.Failed += r.Requests - r.OK + r.Late.Total()
	for k := range m.cpu {
		fs.Cores[k] += m.cpu[k]
	}
}

// summarize fills the means and percentiles once every round is in.
func (fs *FixedSide) summarize() {
	if len(fs.Rounds) == 0 {
		if fs.Status == "" {
			fs.Status = "n/a"
		}
		return
	}
	if fs.Status == "" {
		fs.Status = "ok"
	}
	n := float64(len(fs.Rounds))
	for _, r := range fs.Rounds {
		fs.RPS += r.RPS / n
	}
	for k := range fs.Cores {
		fs.Cores[k] /= n
	}
	fs.Latency = load.LatencyOf(&fs.hist)
	fs.LagP99 = load.LatencyOf(&fs.lag).P99
}

// runFixed measures both servers at each of o.FixedShares of side A's
// rate. It needs both servers and side A's rate.
func runFixed(ctx context.Context, o *Options, sc Scenario, servers [2]*authServer, bpid int, users *load.Users,
	a *Side, say func(string, ...any)) []FixedRate {
	if sc.PenaltyBaseline || sc.Attack || a.RPS <= 0 || servers[0] == nil || servers[1] == nil {
		return nil
	}
	var out []FixedRate
	for _, share := range o.FixedShares {
		fr := FixedRate{Share: share, Rate: share * a.RPS, Dovecot: &FixedSide{}, Authd: &FixedSide{}}
		sides := [2]*FixedSide{fr.Dovecot, fr.Authd}
		for round := range o.Rounds {
			for i, s := range servers {
				if ctx.Err() != nil || sides[i].Status != "" {
					continue
				}
				m, err := measure(ctx, o, sc, s, bpid, users, measureOpts{rate: fr.Rate, profile: round == o.Rounds-1,
					tag: fmt.Sprintf("-at%.0f", share*100)})
				if err != nil {
					sides[i].Status = "error: " + firstLine(err)
					say("  %s at %.0f/s: %v", s.name, fr.Rate, err)
					continue
				}
				sides[i].add(m)
				l := m.legit.Latency
				say("  %-9s round %d at %3.0f %% (%.0f/s): p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  lag p99 %.2f ms  cores: server %.2f backend %.2f load %.2f other %.2f",
					s.name, round+1, share*100, fr.Rate, l.P50, l.P99, l.P999, l.Max, m.legit.SendLag.P99,
					m.cpu[0], m.cpu[1], m.cpu[2], m.cpu[3])
			}
		}
		for _, sd := range sides {
			sd.summarize()
		}
		if fr.Dovecot.Status == "ok" && fr.Authd.Status == "ok" {
			met := fr.Authd.Latency.P99 <= fr.Dovecot.Latency.P99
			fr.Met = &met
		}
		out = append(out, fr)
	}
	return out
}

// notes are remarks about rounds whose latencies are suspect.
func (fr *FixedRate) notes() []string {
	var n []string
	for _, x := range []struct {
		name string
		sd   *FixedSide
	}{{"dovecot", fr.Dovecot}, {"authd", fr.Authd}} {
		if strings.HasPrefix(x.sd.Status, "error") {
			n = append(n, fmt.Sprintf("%s at %.0f %%: %s", x.name, fr.Share*100, x.sd.Status))
		}
		if x.sd.Unsent > 0 || x.sd.Failed > 0 {
			n = append(n, fmt.Sprintf("%s at %.0f %%: %d requests not sent (%d in flight per connection), %d not answered OK",
				x.name, fr.Share*100, x.sd.Unsent, fixedDepth, x.sd.Failed))
		}
	}
	return n
}
