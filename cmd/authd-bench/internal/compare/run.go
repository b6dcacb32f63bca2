package compare

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
	"github.com/authd-project/authd/internal/realserver"
)

// runScenario measures one scenario on both servers.
func runScenario(ctx context.Context, o *Options, sc Scenario, work string, users *load.Users,
	b *backends, say func(string, ...any)) ScenarioResult {
	res := ScenarioResult{Scenario: sc, Dovecot: &Side{}, Authd: &Side{}, TargetP99MS: msOf(sc.TargetP99)}
	bpid, err := b.get(ctx, sc.Backend)
	if err != nil {
		msg := fmt.Sprintf("n/a (%s backend: %v)", sc.Backend, firstLine(err))
		res.Dovecot.Status, res.Authd.Status = msg, msg
		say("  %s", msg)
		return res
	}
	servers := startServers(ctx, o, sc.authConf(b.env), filepath.Join(work, sc.Name), &res, say)
	for _, s := range servers {
		if s != nil {
			defer s.stop()
		}
	}
	sides := [2]*Side{res.Dovecot, res.Authd}
	var cores [2][4]float64
	for round := range o.Rounds {
		for i, s := range servers {
			if s == nil || ctx.Err() != nil {
				continue
			}
			r, cpu, prof, err := measure(ctx, o, sc, s, bpid, users, round == 0 && sc.Cache, round == o.Rounds-1)
			if err != nil {
				sides[i].Status = "error: " + firstLine(err)
				say("  %s round %d: %v", s.name, round+1, err)
				servers[i] = nil
				continue
			}
			sides[i].add(r, prof)
			for k := range cpu {
				cores[i][k] += cpu[k]
			}
			say("  %-7s round %d: %8.0f auth/s  p50 %.2f ms  p99 %.2f ms  (ok %d fail %d tempfail %d errors %d)  cores: server %.2f backend %.2f load %.2f other %.2f",
				s.name, round+1, r.RPS, r.Latency.P50, r.Latency.P99, r.OK, r.Fail, r.TempFail, r.Errors, cpu[0], cpu[1], cpu[2], cpu[3])
			if r.WarmAll != nil {
				say("  %-7s warm-all: %d users in %.1f s", s.name, r.WarmAll.Total(), r.WarmAll.Seconds)
			}
			if round == 0 && sc.Cache {
				checkCache(ctx, s, sides[i], users.Names[0], &res)
			}
		}
	}
	for i, sd := range sides {
		res.Notes = append(res.Notes, sd.summarize([]string{"dovecot", "authd"}[i], cores[i])...)
	}
	res.judge()
	return res
}

// startServers starts Dovecot and authd on conf in dir; a server that
// cannot start is nil, and its side's status says why. Dovecot that does
// not start is "n/a": most often it lacks the scenario's driver plugin
// (dovecot-mysql, dovecot-ldap). authd that "authd check" refuses is
// "n/a (config refused)", with check's reason in the notes; any other
// failure of authd is an error.
func startServers(ctx context.Context, o *Options, conf, dir string, res *ScenarioResult,
	say func(string, ...any)) [2]*authServer {
	var servers [2]*authServer
	if res.Redis {
		return startRedisPair(ctx, o, conf, dir, res, say)
	}
	if s, err := startDovecot(ctx, filepath.Join(dir, "dovecot"), conf); err != nil {
		res.Dovecot.Status = "n/a (" + firstLine(err) + ")"
		say("  dovecot: %v", err)
	} else {
		servers[0] = s
	}
	if s, err := startAuthd(ctx, o.Authd, filepath.Join(dir, "authd"), conf); err != nil {
		var note string
		res.Authd.Status, note = authdFailure(err)
		if note != "" {
			res.Notes = append(res.Notes, note)
		}
		say("  authd: %v", err)
	} else {
		servers[1] = s
	}
	return servers
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
func (sd *Side) add(r *load.Result, prof []string) {
	sd.Rounds = append(sd.Rounds, r)
	sd.hist.Merge(r.Histogram())
	if prof != nil {
		sd.Profile = prof
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
	if res.Dovecot.RPS <= 0 || res.Authd.RPS <= 0 {
		return
	}
	res.Ratio = res.Authd.RPS / res.Dovecot.RPS
	if res.TargetRatio > 0 {
		met := res.Ratio >= res.TargetRatio
		if res.TargetP99 > 0 && res.Authd.P99 > msOf(res.TargetP99) {
			met = false
		}
		res.Met = &met
	}
}

// measure runs one measurement against s and samples CPU time over the
// window: the server's process group, the backend's, this process, and
// everything else on the machine.
func measure(ctx context.Context, o *Options, sc Scenario, s *authServer, backendPID int, users *load.Users,
	warmAll, profile bool) (*load.Result, [4]float64, []string, error) {
	var mu sync.Mutex
	var cpu [4]float64
	var prof []string
	var wg sync.WaitGroup
	groups := [3]int{s.cpuGroup(), -1, 0}
	if backendPID > 0 {
		groups[1] = backendPID
	}
	cfg := load.Config{
		Target:    load.Target{Network: "unix", Address: s.clientSock},
		Protocols: load.Builtin(), Protocol: "client", Mech: "PLAIN",
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
	r, err := load.Run(ctx, cfg)
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
