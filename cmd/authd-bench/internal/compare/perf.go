package compare

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/realserver"
)

// perfRun is a `perf record` attached to a server for one window.
type perfRun struct {
	cmd    *exec.Cmd
	data   string
	report string
	err    error
}

// startPerf records call graphs of pids for d. Neither authd nor Dovecot
// has a profiling endpoint; perf sees both the same way, from outside,
// including the kernel time of their socket I/O. Go binaries keep frame
// pointers, so -g call graphs work without DWARF unwinding.
func startPerf(ctx context.Context, dir, name string, pids []int, d time.Duration) *perfRun {
	bin, err := realserver.LookBin("perf")
	if err != nil || len(pids) == 0 {
		return &perfRun{err: fmt.Errorf("perf: %v (pids %v)", err, pids)}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &perfRun{err: err}
	}
	var ps []string
	for _, p := range pids {
		ps = append(ps, strconv.Itoa(p))
	}
	pr := &perfRun{data: filepath.Join(dir, name+".perf.data"), report: filepath.Join(dir, name+".txt")}
	secs := strconv.FormatFloat(d.Seconds(), 'f', 2, 64)
	pr.cmd = exec.CommandContext(ctx, bin, "record", "-q", "-F", "499", "-g", "-o", pr.data,
		"-p", strings.Join(ps, ","), "--", "sleep", secs)
	if err := pr.cmd.Start(); err != nil {
		pr.err = err
		pr.cmd = nil
	}
	return pr
}

// wait ends the recording and returns the report's top lines (self time by
// shared object and symbol, every thread and process together), also
// written next to the data.
func (pr *perfRun) wait() []string {
	if pr.cmd == nil {
		return []string{"no profile: " + pr.err.Error()}
	}
	if err := pr.cmd.Wait(); err != nil {
		return []string{"no profile: perf record: " + err.Error()}
	}
	bin, _ := realserver.LookBin("perf")
	out, err := exec.Command(bin, "report", "-i", pr.data, "--stdio", "--no-children",
		"--sort", "dso,symbol", "-g", "none", "--percent-limit", "1").Output()
	if err != nil {
		return []string{"no profile: perf report: " + err.Error()}
	}
	_ = os.WriteFile(pr.report, out, 0o644)
	var top []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		top = append(top, strings.Join(strings.Fields(l), " "))
		if len(top) == 15 {
			break
		}
	}
	return top
}
