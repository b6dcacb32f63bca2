package compare

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/authd-project/authd/internal/bench"
	"github.com/authd-project/authd/schemes"
)

// Options configure a comparison. Zero values mean the defaults of the full
// run (or of the quick run when Quick is set).
type Options struct {
	// Authd is the authd binary (make build's bin/authd).
	Authd string
	// Quick: a few seconds per scenario, one A B pair, the load drawn from
	// the first 1000 users (the data still holds all of them).
	Quick bool
	// Scenarios are names or globs of Scenarios; empty: all.
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
		o.Accounts = bench.DefaultUserCount
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
	if o.Rounds < 1 || o.Rounds > 10 {
		return fmt.Errorf("rounds %d: want 1..10", o.Rounds)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
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
}

// ScenarioResult is one row of the table.
type ScenarioResult struct {
	Scenario
	Dovecot *Side `json:"dovecot"`
	Authd   *Side `json:"authd"`
	// Ratio is authd's rate over Dovecot's; 0 when either is missing.
	Ratio float64 `json:"ratio,omitempty"`
	// TargetP99MS is Scenario.TargetP99 in milliseconds.
	TargetP99MS float64 `json:"target_p99_ms,omitempty"`
	// Met is whether the target holds; nil when there is none or
	// a side is missing.
	Met   *bool    `json:"met,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Side is one server's measurements in a scenario.
type Side struct {
	// Status is "ok", or why there is no number: "n/a (driver missing)",
	// "n/a (…)", "error: …".
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
	// pass: > 0 proves the cache was in use.
	CacheEntries *int            `json:"cache_entries,omitempty"`
	Rounds       []*bench.Result `json:"rounds,omitempty"`
	// Profile is perf's top symbols over the last round, when asked for.
	Profile []string `json:"profile,omitempty"`

	hist bench.Histogram
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
	if bin, err := lookBin("dovecot"); err == nil {
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
			Duration: o.Duration.Seconds(), Warmup: o.Warmup.Seconds(), Rounds: o.Rounds, Quick: o.Quick, NoPenalty: true},
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
	if err := mkdirs(work); err != nil {
		return nil, err
	}
	say("work directory %s", work)

	t := time.Now()
	data, err := LoadOrBuildData(ctx, o.Accounts, o.DataDir, func(s string) { say("%s", s) })
	if err != nil {
		return nil, err
	}
	say("data: %d accounts ready in %.1f s", len(data.Accounts), time.Since(t).Seconds())
	e := env{dataDir: filepath.Join(work, "data")}
	if err := mkdirs(e.dataDir); err != nil {
		return nil, err
	}
	for _, sch := range []string{"PLAIN", "SHA512-CRYPT"} {
		if err := writeFile(filepath.Join(e.dataDir, "users-"+sch), data.passwdFile(sch)); err != nil {
			return nil, err
		}
	}

	// The backends start once, on first use, and serve every scenario.
	var db *mariaDB
	var ldap *slapd
	var dbErr, ldapErr error
	defer func() { db.stop(); ldap.stop() }()
	backend := func(kind string) (*proc, error) {
		switch kind {
		case "sql":
			if db == nil && dbErr == nil {
				db, dbErr = setupSQL(ctx, filepath.Join(work, "mariadb"), data, &e)
				if dbErr == nil {
					say("mariadbd ready, %d rows", len(data.Accounts))
				}
			}
			if dbErr != nil {
				return nil, dbErr
			}
			return db.proc, nil
		case "ldap":
			if ldap == nil && ldapErr == nil {
				ldap, ldapErr = setupLDAP(ctx, filepath.Join(work, "slapd"), data, &e)
				if ldapErr == nil {
					say("slapd ready, %d entries", len(data.Accounts))
				}
			}
			if ldapErr != nil {
				return nil, ldapErr
			}
			return ldap.proc, nil
		}
		return nil, nil
	}

	users := data.Users(o.LoadUsers)
	for _, sc := range scs {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		say("scenario %s: %s", sc.Name, sc.Title)
		r := runScenario(ctx, &o, sc, e, work, users, backend, say)
		rep.Scenarios = append(rep.Scenarios, r)
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, ctx.Err()
}

func setupSQL(ctx context.Context, dir string, data *Data, e *env) (*mariaDB, error) {
	if err := mkdirs(dir); err != nil {
		return nil, err
	}
	m, err := startMariaDB(ctx, dir)
	if err != nil {
		return nil, err
	}
	rows := filepath.Join(dir, "users.tsv")
	if err := writeFile(rows, data.sqlRows()); err != nil {
		m.stop()
		return nil, err
	}
	sql := fmt.Sprintf(`SET GLOBAL local_infile=1;
CREATE DATABASE mail;
CREATE USER 'authd'@'localhost' IDENTIFIED BY 'authdpw';
GRANT SELECT ON mail.* TO 'authd'@'localhost';
CREATE TABLE mail.users (username VARCHAR(255) PRIMARY KEY, password_plain VARCHAR(255),
  password_crypt VARCHAR(255), uid INT, gid INT, home VARCHAR(255));
LOAD DATA LOCAL INFILE '%s' INTO TABLE mail.users (username, password_plain, password_crypt, uid, gid, home);
SELECT COUNT(*) FROM mail.users;
`, rows)
	out, err := m.exec(ctx, sql)
	if err != nil {
		m.stop()
		return nil, err
	}
	if got := strings.TrimSpace(out); got != fmt.Sprint(len(data.Accounts)) {
		m.stop()
		return nil, fmt.Errorf("mariadb: loaded %s rows, want %d", got, len(data.Accounts))
	}
	e.sqlSock = m.socket
	for _, sch := range []string{"PLAIN", "SHA512-CRYPT"} {
		if err := writeFile(filepath.Join(e.dataDir, "sql-"+sch+".conf.ext"), []byte(sqlConf(*e, sch))); err != nil {
			m.stop()
			return nil, err
		}
	}
	return m, nil
}

func setupLDAP(ctx context.Context, dir string, data *Data, e *env) (*slapd, error) {
	svc, err := schemes.Generate("SSHA", []byte("svcpw"), "", 0)
	if err != nil {
		return nil, err
	}
	s, err := startSlapd(ctx, dir, data.ldif(svc))
	if err != nil {
		return nil, err
	}
	e.ldapURI = s.uri
	for name, bind := range map[string]bool{"ldap.conf.ext": false, "ldap-bind.conf.ext": true} {
		if err := writeFile(filepath.Join(e.dataDir, name), []byte(ldapConf(*e, bind))); err != nil {
			s.stop()
			return nil, err
		}
	}
	return s, nil
}

// runScenario measures one scenario on both servers.
func runScenario(ctx context.Context, o *Options, sc Scenario, e env, work string, users *bench.Users,
	backend func(string) (*proc, error), say func(string, ...any)) ScenarioResult {
	res := ScenarioResult{Scenario: sc, Dovecot: &Side{}, Authd: &Side{}, TargetP99MS: msOf(sc.TargetP99)}
	bp, err := backend(sc.Backend)
	if err != nil {
		msg := fmt.Sprintf("n/a (%s backend: %v)", sc.Backend, firstLine(err))
		res.Dovecot.Status, res.Authd.Status = msg, msg
		say("  %s", msg)
		return res
	}
	conf := sc.authConf(e)
	dir := filepath.Join(work, sc.Name)
	var servers [2]*authServer
	if s, err := startDovecot(ctx, filepath.Join(dir, "dovecot"), conf); err != nil {
		res.Dovecot.Status = "n/a (" + firstLine(err) + ")"
		say("  dovecot: %v", err)
	} else {
		servers[0] = s
		defer s.stop()
	}
	if s, err := startAuthd(ctx, o.Authd, filepath.Join(dir, "authd"), conf); err != nil {
		if errors.Is(err, ErrDriverMissing) {
			res.Authd.Status = "n/a (driver missing)"
			res.Notes = append(res.Notes, "authd: "+firstLine(err))
		} else {
			res.Authd.Status = "error: " + firstLine(err)
		}
		say("  authd: %v", err)
	} else {
		servers[1] = s
		defer s.stop()
	}
	sides := [2]*Side{res.Dovecot, res.Authd}
	var cores [2][4]float64
	for round := range o.Rounds {
		for i, s := range servers {
			if s == nil || ctx.Err() != nil {
				continue
			}
			last := round == o.Rounds-1
			r, cpu, prof, err := measure(ctx, o, sc, s, bp, users, round == 0 && sc.Cache, last)
			if err != nil {
				sides[i].Status = "error: " + firstLine(err)
				say("  %s round %d: %v", s.name, round+1, err)
				servers[i] = nil
				continue
			}
			sides[i].Rounds = append(sides[i].Rounds, r)
			sides[i].hist.Merge(r.Histogram())
			for k := range cpu {
				cores[i][k] += cpu[k]
			}
			if prof != nil {
				sides[i].Profile = prof
			}
			say("  %-7s round %d: %8.0f auth/s  p50 %.2f ms  p99 %.2f ms  (ok %d fail %d tempfail %d errors %d)  cores: server %.2f backend %.2f load %.2f other %.2f",
				s.name, round+1, r.RPS, r.Latency.P50, r.Latency.P99, r.OK, r.Fail, r.TempFail, r.Errors, cpu[0], cpu[1], cpu[2], cpu[3])
			if r.WarmAll != nil {
				say("  %-7s warm-all: %d users in %.1f s", s.name, r.WarmAll.Total(), r.WarmAll.Seconds)
			}
			if round == 0 && sc.Cache {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				n, err := cacheFlushUser(cctx, s.masterSock, users.Names[0])
				cancel()
				if err != nil {
					res.Notes = append(res.Notes, fmt.Sprintf("%s: CACHE-FLUSH failed: %v", s.name, err))
				} else {
					sides[i].CacheEntries = &n
					if n == 0 {
						res.Notes = append(res.Notes, fmt.Sprintf("%s: no cache entry for %s after the warm pass: its auth cache is not in use", s.name, users.Names[0]))
					}
				}
			}
		}
	}
	for i, sd := range sides {
		if len(sd.Rounds) == 0 {
			if sd.Status == "" {
				sd.Status = "n/a"
			}
			continue
		}
		if sd.Status == "" {
			sd.Status = "ok"
		}
		n := float64(len(sd.Rounds))
		for _, r := range sd.Rounds {
			sd.RPS += r.RPS / n
			if r.Errors > 0 || r.Late.Unanswered > 0 || r.Unexpected > 0 {
				res.Notes = append(res.Notes, fmt.Sprintf("%s: %d errors, %d unanswered, %d unexpected outcomes in a round",
					[]string{"dovecot", "authd"}[i], r.Errors, r.Late.Unanswered, r.Unexpected))
			}
		}
		sd.P50 = msOf(sd.hist.Percentile(50))
		sd.P99 = msOf(sd.hist.Percentile(99))
		sd.Max = msOf(sd.hist.Max())
		sd.ServerCores, sd.BackendCores, sd.LoadCores, sd.OtherCores = cores[i][0]/n, cores[i][1]/n, cores[i][2]/n, cores[i][3]/n
	}
	if res.Dovecot.RPS > 0 && res.Authd.RPS > 0 {
		res.Ratio = res.Authd.RPS / res.Dovecot.RPS
		if sc.TargetRatio > 0 {
			met := res.Ratio >= sc.TargetRatio
			if sc.TargetP99 > 0 && res.Authd.P99 > msOf(sc.TargetP99) {
				met = false
			}
			res.Met = &met
		}
	}
	return res
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// measure runs one measurement against s and samples CPU time over the
// window: the server's process group, the backend's, this process, and
// everything else on the machine.
func measure(ctx context.Context, o *Options, sc Scenario, s *authServer, backend *proc, users *bench.Users,
	warmAll, profile bool) (*bench.Result, [4]float64, []string, error) {
	var mu sync.Mutex
	var cpu [4]float64
	var prof []string
	var wg sync.WaitGroup
	groups := [3]int{s.cpuGroup(), -1, 0}
	if backend != nil {
		groups[1] = backend.pid()
	}
	cfg := bench.Config{
		Target:   bench.Target{Network: "unix", Address: s.clientSock},
		Protocol: "client", Mech: "PLAIN",
		Conns: o.Conns, Depth: o.Depth, Duration: o.Duration, Warmup: o.Warmup,
		Users: users, NoPenalty: true, Service: "imap", WarmAll: warmAll,
		OnWindow: func(t0, t1 time.Time) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !sleepUntil(ctx, t0) {
					return
				}
				var before [3]int64
				for k, g := range groups {
					if g >= 0 {
						before[k], _ = cpuTicks(g)
					}
				}
				busyBefore, _ := machineBusyTicks()
				var pr *perfRun
				if profile && o.PerfDir != "" {
					pr = startPerf(ctx, o.PerfDir, sc.Name+"-"+s.name, s.profilePIDs(), t1.Sub(t0))
				}
				start := time.Now()
				if !sleepUntil(ctx, t1) {
					return
				}
				secs := time.Since(start).Seconds()
				mu.Lock()
				defer mu.Unlock()
				var ours float64
				for k, g := range groups {
					if g >= 0 {
						after, _ := cpuTicks(g)
						cpu[k] = float64(after-before[k]) / clkTck / secs
						ours += cpu[k]
					}
				}
				busyAfter, _ := machineBusyTicks()
				cpu[3] = max(0, float64(busyAfter-busyBefore)/clkTck/secs-ours)
				if pr != nil {
					prof = pr.wait()
				}
			}()
		},
	}
	r, err := bench.Run(ctx, cfg)
	wg.Wait()
	if err != nil {
		return nil, cpu, nil, err
	}
	return r, cpu, prof, nil
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
