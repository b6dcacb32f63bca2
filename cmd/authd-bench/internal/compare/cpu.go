package compare

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU accounting from /proc: the harness samples the CPU time of the
// server's process group, the backend's and its own over each measured
// window, and the machine's total, so that a scenario's limit can be read
// from the numbers.

// cpuTicks is the user+system CPU time, in clock ticks, of every live
// process in process group pgid or whose parent is pgid (pgid 0: this
// process only). The parent rule is for PostgreSQL, whose backends call
// setsid() and so leave the postmaster's group.
func cpuTicks(pgid int) (int64, error) {
	if pgid == 0 {
		return statTicks("/proc/self/stat", -1)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		t, err := statTicks(filepath.Join("/proc", e.Name(), "stat"), pgid)
		if err == nil {
			total += t
		}
	}
	return total, nil
}

var errOtherGroup = errors.New("other process group")

// statTicks parses utime+stime from a /proc/PID/stat file, if the process
// is in group pgid or a child of pgid (any process when pgid < 0).
func statTicks(path string, pgid int) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// comm may contain spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, pgrp 5, utime 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("malformed stat")
	}
	if pgid >= 0 {
		parent, _ := strconv.Atoi(f[1])
		g, _ := strconv.Atoi(f[2])
		if g != pgid && parent != pgid {
			return 0, errOtherGroup
		}
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s, nil
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

// groupPIDs lists the live processes of group pgid whose command name is in
// names (all of them when names is empty).
func groupPIDs(pgid int, names ...string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || close < open {
			continue
		}
		comm := string(b[open+1 : close])
		f := strings.Fields(string(b[close+1:]))
		if len(f) < 3 {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g != pgid {
			continue
		}
		if len(names) == 0 {
			out = append(out, pid)
			continue
		}
		for _, n := range names {
			if comm == n {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// machineBusyTicks is the CPU time all processes spent, from /proc/stat's
// aggregate line (user, nice, system, irq, softirq, steal): subtracting the
// measured groups leaves what other processes on a shared machine took.
func machineBusyTicks() (int64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var total int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		total += n
	}
	return total, nil
}
