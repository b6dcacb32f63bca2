package compare

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
	"github.com/authd-project/authd/internal/realserver"
)

// runScenario measures one scenario on both servers.
func runScenario(ctx context.Context, o *Options, sc Scenario, work string, users *load.Users,
	b *backends, say func(string, ...any)) ScenarioResult {
	res := ScenarioResult{Scenario: sc, Authd: &Side{}, TargetP99MS: msOf(sc.TargetP99)}
	a := &Side{}
	if sc.PenaltyBaseline {
		res.Baseline = a
	} else {
		res.Dovecot = a
	}
	sides := [2]*Side{a, res.Authd}
	bpid, err := b.get(ctx, sc.Backend)
	if err != nil {
		msg := fmt.Sprintf("n/a (%s backend: %v)", sc.Backend, firstLine(err))
		a.Status, res.Authd.Status = msg, msg
		say("  %s", msg)
		return res
	}
	servers := startServers(ctx, o, sc, sc.authConf(b.env), filepath.Join(work, sc.Name), sides, &res, say)
	for _, s := range servers {
		if s != nil {
			defer s.stop()
		}
	}
	var cores [2][4]float64
	for round := range o.Rounds {
		for i, s := range servers {
			if s == nil || ctx.Err() != nil {
				continue
			}
			m, err := measure(ctx, o, sc, s, bpid, users, measureOpts{warmAll: round == 0 && sc.Cache, profile: round == o.Rounds-1})
			if err != nil {
				sides[i].Status = "error: " + firstLine(err)
				say("  %s round %d: %v", s.name, round+1, err)
				servers[i] = nil
				continue
			}
			sides[i].add(m)
			for k := range m.cpu {
				cores[i][k] += m.cpu[k]
			}
			m.say(s.name, round, say)
			if round == 0 && sc.Cache {
				checkCache(ctx, s, sides[i], users.Names[0], &res)
			}
		}
	}
	for i, sd := range sides {
		res.Notes = append(res.Notes, sd.summarize(servers[i].nameOr(sideNames(sc)[i]), cores[i])...)
	}
	res.judge()
	res.Fixed = runFixed(ctx, o, sc, servers, bpid, users, a, say)
	for i := range res.Fixed {
		res.Notes = append(res.Notes, res.Fixed[i].notes()...)
	}
	return res
}

// sideNames are the names of a scenario's sides A and B.
func sideNames(sc Scenario) [2]string {
	if sc.Redis {
		return [2]string{"authd", "authd+redis"}
	}
	if sc.PenaltyBaseline {
		return [2]string{"authd-off", "authd"}
	}
	return [2]string{"dovecot", "authd"}
}

// say reports one measurement as a progress line.
func (m *measurement) say(name string, round int, say func(string, ...any)) {
	r, cpu := m.legit, m.cpu
	say("  %-9s round %d: %8.0f auth/s  p50 %.2f ms  p99 %.2f ms  (ok %d fail %d tempfail %d errors %d)  cores: server %.2f backend %.2f load %.2f other %.2f",
		name, round+1, r.RPS, r.Latency.P50, r.Latency.P99, r.OK, r.Fail, r.TempFail, r.Errors, cpu[0], cpu[1], cpu[2], cpu[3])
	if r.WarmAll != nil {
		say("  %-9s warm-all: %d users in %.1f s", name, r.WarmAll.Total(), r.WarmAll.Seconds)
	}
	if at := m.attack; at != nil {
		say("  %-9s attackers: %8.0f req/s from %d addresses, %.1f %% refused (%d of %d probes)",
			name, at.Attacker.RPS, at.Addrs, at.RefusedShare*100, at.ProbesRefused, at.Probes)
	}
}

// startServers starts sides A (Dovecot, or for a PenaltyBaseline
// scenario authd without its defence) and B (authd) on conf in dir; a
// server that cannot start is nil, and its side's status says why.
// Dovecot that does not start is "n/a": most often it lacks the
// scenario's driver plugin (dovecot-mysql, dovecot-ldap). authd that
// "authd check" refuses is "n/a (config refused)", with check's reason in
// the notes; any other failure of authd is an error.
func startServers(ctx context.Context, o *Options, sc Scenario, conf, dir string, sides [2]*Side, res *ScenarioResult,
	say func(string, ...any)) [2]*authServer {
	if sc.Redis {
		return startRedisPair(ctx, o, conf, dir, sides, say)
	}
	var servers [2]*authServer
	names := sideNames(sc)
	for i, name := range names {
		var s *authServer
		var err error
		if name == "dovecot" {
			if s, err = startDovecot(ctx, filepath.Join(dir, name), conf); err != nil {
				sides[i].Status = "n/a (" + firstLine(err) + ")"
			}
		} else if s, err = startAuthd(ctx, o.Authd, filepath.Join(dir, name), conf+sc.authdSettings(i == 0)); err != nil {
			var note string
			sides[i].Status, note = authdFailure(err)
			if note != "" {
				res.Notes = append(res.Notes, name+": "+strings.TrimPrefix(note, "authd: "))
			}
		}
		if err != nil {
			say("  %s: %v", name, err)
			continue
		}
		s.name = name
		servers[i] = s
	}
	return servers
}

// nameOr is the server's name, or def when it did not start.
func (s *authServer) nameOr(def string) string {
	if s == nil {
		return def
	}
	return s.name
}

// authdFailure is the status of authd's side when it did not start, and a
// note for the report: "n/a (config refused)" with authd check's reason
// when this authd cannot run the scenario, an error otherwise.
func authdFailure(err error) (status, note string) {
	if errors.Is(err, realserver.ErrConfigRefused) {
		return "n/a (config refused)", "authd: " + firstLine(err)
	}
	return "error: " + firstLine(err), ""
}

// checkCache asks s, after the warm pass, to flush user's cache entries:
// the count in its CACHE-FLUSH reply shows whether its cache is in use.
func checkCache(ctx context.Context, s *authServer, sd *Side, user string, res *ScenarioResult) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n, err := cacheFlushUser(cctx, s.masterSock, user)
	if err != nil {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: CACHE-FLUSH failed: %v", s.name, err))
		return
	}
	sd.CacheEntries = &n
	if n == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: no cache entry for %s after the warm pass: its auth cache is not in use", s.name, user))
	}
}

// add records one round's result (and its profile, when there is one).
func (sd *Side) add(m *measurement) {
	sd.Rounds = append(sd.Rounds, m.legit)
	sd.hist.Merge(m.legit.Histogram())
	if m.prof != nil {
		sd.Profile = m.prof
	}
	if at := m.attack; at != nil {
		sd.Attackers = append(sd.Attackers, at.Attacker)
		sd.probes[0] += at.Probes
		sd.probes[1] += at.ProbesRefused
	}
}

// summarize fills the side's status, mean rate, percentiles and cores from
// its rounds, and returns notes about rounds whose numbers are suspect.
func (sd *Side) summarize(name string, cores [4]float64) []string {
	if len(sd.Rounds) == 0 {
		if sd.Status == "" {
			sd.Status = "n/a"
		}
		return nil
	}
	if sd.Status == "" {
		sd.Status = "ok"
	}
	var notes []string
	n := float64(len(sd.Rounds))
	for _, r := range sd.Attackers {
		sd.AttackRPS += r.RPS / n
	}
	if len(sd.Attackers) > 0 && sd.probes[0] > 0 {
		share := float64(sd.probes[1]) / float64(sd.probes[0])
		sd.RefusedShare = &share
	}
	for _, r := range sd.Rounds {
		sd.RPS += r.RPS / n
		if r.Errors > 0 || r.Late.Unanswered > 0 || r.Unexpected > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d errors, %d unanswered, %d unexpected outcomes in a round",
				name, r.Errors, r.Late.Unanswered, r.Unexpected))
		}
	}
	sd.P50 = msOf(sd.hist.Percentile(50))
	sd.P99 = msOf(sd.hist.Percentile(99))
	sd.Max = msOf(sd.hist.Max())
	sd.ServerCores, sd.BackendCores, sd.LoadCores, sd.OtherCores = cores[0]/n, cores[1]/n, cores[2]/n, cores[3]/n
	return notes
}

// judge sets the ratio and, when the scenario has a target, whether it
// was met.
func (res *ScenarioResult) judge() {
	a := res.Dovecot
	if res.PenaltyBaseline {
		a = res.Baseline
	}
	if a.RPS <= 0 || res.Authd.RPS <= 0 {
		return
	}
	res.Ratio = res.Authd.RPS / a.RPS
	if res.TargetRatio > 0 || res.TargetP99 > 0 {
		met := res.Ratio >= res.TargetRatio
		if res.TargetP99 > 0 && res.Authd.P99 > msOf(res.TargetP99) {
			met = false
		}
		res.Met = &met
	}
}

// measurement is one round against one server.
type measurement struct {
	legit  *load.Result
	attack *load.AttackResult // attack scenarios; legit is its Legit
	cpu    [4]float64         // cores: server, backend, load generator, other
	prof   []string
}

// measureOpts say what a measurement does beyond the scenario's load.
type measureOpts struct {
	warmAll bool    // authenticate every user first (fills the cache)
	profile bool    // record a perf profile when o.PerfDir is set
	rate    float64 // open loop at this rate (o.Fixed*), instead of the closed loop
	tag     string  // added to the profile's name
}

// measure runs one measurement against s and samples CPU time over the
// window: the server's process group, the backend's, this process, and
// everything else on the machine.
func measure(ctx context.Context, o *Options, sc Scenario, s *authServer, backendPID int, users *load.Users,
	mo measureOpts) (*measurement, error) {
	smp := &sampler{ctx: ctx, groups: [3]int{s.cpuGroup(), -1, 0}}
	if backendPID > 0 {
		smp.groups[1] = backendPID
	}
	if mo.profile && o.PerfDir != "" {
		smp.perfDir, smp.perfName, smp.perfPIDs = o.PerfDir, sc.Name+"-"+s.name+mo.tag, s.profilePIDs()
	}
	cfg := load.Config{
		Target:    load.Target{Network: "unix", Address: s.clientSock},
		Protocols: load.Builtin(), Protocol: "client", Mech: "PLAIN",
		Conns: o.Conns, Depth: o.Depth, Duration: o.Duration, Warmup: o.Warmup,
		// Dovecot needs no-penalty (its anvil penalty would dominate);
		// authd against itself gets what a login process sends.
		Users: users, NoPenalty: !sc.PenaltyBaseline, UserAddrs: sc.UserAddrs, Service: "imap", WarmAll: mo.warmAll,
		OnWindow: smp.window,
	}
	if mo.rate > 0 {
		cfg.Rate, cfg.Depth, cfg.Duration, cfg.Warmup = mo.rate, fixedDepth, o.FixedDuration, o.FixedWarmup
	}
	m := &measurement{}
	var err error
	if sc.Attack {
		if m.attack, err = load.RunAttack(ctx, cfg, load.Attack{Addrs: o.AttackAddrs}); err == nil {
			m.legit = m.attack.Legit
		}
	} else {
		m.legit, err = load.Run(ctx, cfg)
	}
	m.cpu, m.prof = smp.wait()
	if err != nil {
		return nil, err
	}
	return m, nil
}

// sampler measures CPU time over a measured window, and records a perf
// profile of it when perfDir is set.
type sampler struct {
	ctx               context.Context
	groups            [3]int // process groups: server, backend (-1: none), this process (0)
	perfDir, perfName string
	perfPIDs          []int
	wg                sync.WaitGroup
	mu                sync.Mutex
	cpu               [4]float64
	prof              []string
}

// window is load.Config.OnWindow: it samples from t0 to t1 in its own
// goroutine, which wait waits for.
func (smp *sampler) window(t0, t1 time.Time) {
	smp.wg.Go(func() {
		if !sleepUntil(smp.ctx, t0) {
			return
		}
		var before [3]int64
		for k, g := range smp.groups {
			if g >= 0 {
				before[k], _ = cpuTicks(g)
			}
		}
		busyBefore, _ := machineBusyTicks()
		var pr *perfRun
		if smp.perfDir != "" {
			pr = startPerf(smp.ctx, smp.perfDir, smp.perfName, smp.perfPIDs, t1.Sub(t0))
		}
		start := time.Now()
		if !sleepUntil(smp.ctx, t1) {
			return
		}
		secs := time.Since(start).Seconds()
		smp.mu.Lock()
		defer smp.mu.Unlock()
		var ours float64
		for k, g := range smp.groups {
			if g >= 0 {
				after, _ := cpuTicks(g)
				smp.cpu[k] = float64(after-before[k]) / clkTck / secs
				ours += smp.cpu[k]
			}
		}
		busyAfter, _ := machineBusyTicks()
		smp.cpu[3] = max(0, float64(busyAfter-busyBefore)/clkTck/secs-ours)
		if pr != nil {
			smp.prof = pr.wait()
		}
	})
}

// wait returns the cores used and the profile, once the window's
// goroutine is done.
func (smp *sampler) wait() ([4]float64, []string) {
	smp.wg.Wait()
	smp.mu.Lock()
	defer smp.mu.Unlock()
	return smp.cpu, smp.prof
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
