package compare

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
	"github.com/authd-project/authd/internal/realserver"
)

// Options configure a comparison. Zero values mean the defaults of the full
// run (or of the quick run when Quick is set).
type Options struct {
	// Authd is the authd binary (make build's bin/authd).
	Authd string
	// Quick: a few seconds per scenario, one A B pair, the load drawn from
	// the first 1000 users (the data still holds all of them).
	Quick bool
	// Scenarios are names or globs of AllScenarios; empty: all.
	Scenarios []string
	// Accounts is the number of users in the data (10,000).
	Accounts int
	// LoadUsers is how many of them the load draws from (0: all; quick:
	// 1000), which bounds the cache warm-up.
	LoadUsers int
	// DataDir keeps the generated accounts between runs ("" : rebuilt).
	DataDir string
	// WorkDir holds the instances; "" makes a temporary one, removed at
	// the end unless Keep.
	WorkDir string
	Keep    bool
	// Duration and Warmup of each measurement; Rounds of A B pairs.
	Duration, Warmup time.Duration
	Rounds           int
	// Conns × Depth requests in flight (8 × 8 = 64).
	Conns, Depth int
	// AttackAddrs is the number of attacking addresses of the attack
	// scenarios (load.DefaultAttackAddrs, the 1000).
	AttackAddrs int
	// FixedShares are the shares of Dovecot's maximum rate at which both
	// servers are also measured open-loop (fixed.go); default 25 % and
	// 50 %. NoFixed skips those rounds.
	FixedShares []float64
	NoFixed     bool
	// FixedDuration and FixedWarmup of each fixed-rate measurement
	// (default 5 s and 1 s; quick: 2 s and 0.5 s).
	FixedDuration, FixedWarmup time.Duration
	// PerfDir, when set, records a perf profile of each server during its
	// last round of every scenario and keeps perf's report there.
	PerfDir string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
}

func (o *Options) normalize() error {
	if o.Authd == "" {
		o.Authd = "bin/authd"
	}
	if p, err := filepath.Abs(o.Authd); err == nil {
		o.Authd = p
	}
	if fi, err := os.Stat(o.Authd); err != nil || fi.IsDir() {
		return fmt.Errorf("authd binary %s not found (run make build, or pass -authd)", o.Authd)
	}
	if o.Accounts == 0 {
		o.Accounts = load.DefaultUserCount
	}
	if o.LoadUsers == 0 && o.Quick {
		o.LoadUsers = 1000
	}
	if o.LoadUsers <= 0 || o.LoadUsers > o.Accounts {
		o.LoadUsers = o.Accounts
	}
	if o.Duration == 0 {
		o.Duration = 8 * time.Second
		if o.Quick {
			o.Duration = 2 * time.Second
		}
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
		if o.Quick {
			o.Warmup = 500 * time.Millisecond
		}
	}
	if o.Rounds == 0 {
		o.Rounds = 2
		if o.Quick {
			o.Rounds = 1
		}
	}
	if o.Conns == 0 {
		o.Conns = 8
	}
	if o.Depth == 0 {
		o.Depth = 8
	}
	if err := o.normalizeFixed(); err != nil {
		return err
	}
	if o.AttackAddrs == 0 {
		o.AttackAddrs = load.DefaultAttackAddrs
	}
	if o.Rounds < 1 || o.Rounds > 10 {
		return fmt.Errorf("rounds %d: want 1..10", o.Rounds)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return nil
}

// normalizeFixed fills the fixed-rate defaults and checks the shares.
func (o *Options) normalizeFixed() error {
	switch {
	case o.NoFixed:
		o.FixedShares = nil
	case len(o.FixedShares) == 0:
		o.FixedShares = []float64{0.25, 0.5}
	}
	for _, s := range o.FixedShares {
		if !(s > 0 && s <= 2) {
			return fmt.Errorf("fixed-rate share %v: want more than 0 and at most 2 (of Dovecot's maximum)", s)
		}
	}
	if o.FixedDuration == 0 {
		o.FixedDuration = 5 * time.Second
		if o.Quick {
			o.FixedDuration = 2 * time.Second
		}
	}
	if o.FixedWarmup == 0 {
		o.FixedWarmup = time.Second
		if o.Quick {
			o.FixedWarmup = 500 * time.Millisecond
		}
	}
	return nil
}

// Report is the outcome of a comparison.
type Report struct {
	Machine   Machine          `json:"machine"`
	Started   time.Time        `json:"started"`
	Seconds   float64          `json:"seconds"`
	Settings  Settings         `json:"settings"`
	Scenarios []ScenarioResult `json:"scenarios"`
}

// Settings echoes the load every measurement used.
type Settings struct {
	Accounts  int     `json:"accounts"`
	LoadUsers int     `json:"load_users"`
	Conns     int     `json:"conns"`
	Depth     int     `json:"depth"`
	Duration  float64 `json:"duration_seconds"`
	Warmup    float64 `json:"warmup_seconds"`
	Rounds    int     `json:"rounds"`
	Quick     bool    `json:"quick"`
	NoPenalty bool    `json:"no_penalty"`
	// AttackAddrs: the attack scenarios' attacking addresses.
	AttackAddrs int `json:"attack_addrs,omitempty"`
	// The fixed-rate rounds: shares of Dovecot's maximum, their window
	// and warm-up.
	FixedShares   []float64 `json:"fixed_shares,omitempty"`
	FixedDuration float64   `json:"fixed_duration_seconds,omitempty"`
	FixedWarmup   float64   `json:"fixed_warmup_seconds,omitempty"`
}

// ScenarioResult is one row of the table.
type ScenarioResult struct {
	Scenario
	// Dovecot is side A, or with PenaltyBaseline Baseline is: authd with
	// penalty { enabled = no }.
	Dovecot  *Side `json:"dovecot,omitempty"`
	Baseline *Side `json:"authd_penalty_off,omitempty"`
	Authd    *Side `json:"authd"`
	// Ratio is authd's rate over side A's; 0 when either is missing.
	Ratio float64 `json:"ratio,omitempty"`
	// TargetP99MS is Scenario.TargetP99 in milliseconds.
	TargetP99MS float64 `json:"target_p99_ms,omitempty"`
	// Met is whether the target holds; nil when there is none or
	// a side is missing.
	Met *bool `json:"met,omitempty"`
	// Fixed are the open-loop rounds at fixed shares of Dovecot's rate.
	Fixed []FixedRate `json:"fixed_rate,omitempty"`
	Notes []string    `json:"notes,omitempty"`
}

// Side is one server's measurements in a scenario.
type Side struct {
	// Status is "ok", or why there is no number: "n/a (config refused)"
	// (authd check rejects the scenario's configuration, e.g. a driver this
	// authd lacks), "n/a (…)" (a server or backend cannot run here),
	// "error: …".
	Status string `json:"status"`
	// RPS is the mean of the rounds' rates; the percentiles are over every
	// request of every round.
	RPS float64 `json:"auth_per_sec,omitempty"`
	P50 float64 `json:"p50_ms,omitempty"`
	P99 float64 `json:"p99_ms,omitempty"`
	Max float64 `json:"max_ms,omitempty"`
	// CPU use over the measured windows, in cores: the server (Dovecot's
	// whole process group: master, auth, auth-workers), the backend
	// (mariadbd or slapd), and the load generator (this process).
	ServerCores  float64 `json:"server_cores,omitempty"`
	BackendCores float64 `json:"backend_cores,omitempty"`
	LoadCores    float64 `json:"load_cores,omitempty"`
	// OtherCores is what every other process on the machine used meanwhile:
	// more than a few hundredths means a shared, noisy machine.
	OtherCores float64 `json:"other_cores"`
	// CacheEntries is what CACHE-FLUSH of one user removed after the warm
	// pass (its reply on the master protocol): > 0 proves the cache was in
	// use.
	CacheEntries *int           `json:"cache_entries,omitempty"`
	Rounds       []*load.Result `json:"rounds,omitempty"`
	// Attack scenarios (the rounds above are the legitimate users'): the
	// attackers' mean rate, the share of their requests refused
	// (estimated from the probes of every round, load.AttackResult), and
	// their rounds.
	AttackRPS    float64        `json:"attack_per_sec,omitempty"`
	RefusedShare *float64       `json:"attack_refused_share,omitempty"`
	Attackers    []*load.Result `json:"attacker_rounds,omitempty"`
	probes       [2]int64       // answered, refused
	// Profile is perf's top symbols over the last round, when asked for.
	Profile []string `json:"profile,omitempty"`

	hist load.Histogram
}

// Machine describes where the comparison ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	Memory    string `json:"memory"`
	Kernel    string `json:"kernel"`
	LoadAvg   string `json:"loadavg_at_start"`
	Go        string `json:"go"`
	Dovecot   string `json:"dovecot"`
	AuthdVers string `json:"authd"`
}

func describeMachine(authd string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				m.Memory = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if bin, err := realserver.LookBin("dovecot"); err == nil {
		if out, err := exec.Command(bin, "--version").Output(); err == nil {
			m.Dovecot = strings.TrimSpace(string(out))
		}
	}
	if out, err := exec.Command(authd, "version").Output(); err == nil {
		m.AuthdVers = strings.TrimSpace(string(out))
	}
	return m
}

// Run builds the data, starts the servers and runs every selected
// scenario, Dovecot then authd, Rounds times. Scenarios that cannot run on
// one side are reported as such, not as errors.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	scs, err := SelectScenarios(o.Scenarios)
	if err != nil {
		return nil, err
	}
	say := func(format string, args ...any) { fmt.Fprintf(o.Progress, "bench-compare: "+format+"\n", args...) }
	rep := &Report{
		Machine: describeMachine(o.Authd), Started: time.Now(),
		Settings: Settings{Accounts: o.Accounts, LoadUsers: o.LoadUsers, Conns: o.Conns, Depth: o.Depth,
			Duration: o.Duration.Seconds(), Warmup: o.Warmup.Seconds(), Rounds: o.Rounds, Quick: o.Quick, NoPenalty: true,
			AttackAddrs: o.AttackAddrs, FixedShares: o.FixedShares, FixedDuration: o.FixedDuration.Seconds(),
			FixedWarmup: o.FixedWarmup.Seconds()},
	}
	work := o.WorkDir
	if work == "" {
		// /tmp, not $TMPDIR: Dovecot's unprivileged users must traverse
		// it, and socket paths must stay short.
		work, err = os.MkdirTemp("/tmp", "authd-bench-")
		if err != nil {
			return nil, err
		}
		if !o.Keep {
			defer os.RemoveAll(work)
		}
	}
	if err := realserver.Mkdirs(work); err != nil {
		return nil, err
	}
	say("work directory %s", work)

	t := time.Now()
	data, err := LoadOrBuildData(ctx, o.Accounts, o.DataDir, func(s string) { say("%s", s) })
	if err != nil {
		return nil, err
	}
	say("data: %d accounts ready in %.1f s", len(data.Accounts), time.Since(t).Seconds())
	b, err := newBackends(work, data, say)
	if err != nil {
		return nil, err
	}
	defer b.stop()

	users := data.Users(o.LoadUsers)
	for _, sc := range scs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		say("scenario %s: %s", sc.Name, sc.Title)
		r := runScenario(ctx, &o, sc, work, users, b, say)
		rep.Scenarios = append(rep.Scenarios, r)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, ctx.Err()
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
