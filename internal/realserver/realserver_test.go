package realserver_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/internal/testenv"
)

// tracker records what a launcher reports.
type tracker struct {
	mu     sync.Mutex
	events []string
}

func (tr *tracker) Group(pgid int, live bool)  { tr.note(fmt.Sprintf("group %d %v", pgid, live)) }
func (tr *tracker) Dir(path string, live bool) { tr.note(fmt.Sprintf("dir %s %v", path, live)) }
func (tr *tracker) Mount(path string, live bool) {
	tr.note(fmt.Sprintf("mount %s %v", path, live))
}

func (tr *tracker) note(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.events = append(tr.events, s)
}

func (tr *tracker) all() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.events...)
}

func TestProcStopsItsGroup(t *testing.T) {
	tr := &tracker{}
	log := filepath.Join(t.TempDir(), "log")
	// The shell forks a child that stays in the group: Stop must end both.
	p, err := realserver.StartProc(realserver.ProcOptions{Name: "sh", Log: log, Tracker: tr},
		"/bin/sh", "-c", "sleep 30 & wait")
	if err != nil {
		t.Fatal(err)
	}
	pgid := p.PID()
	p.Stop(syscall.SIGTERM, 5*time.Second)
	if !p.Exited() {
		t.Error("leader still running after Stop")
	}
	// Signal 0 to the group: ESRCH once every member is gone. The forked
	// sleep got SIGKILL, but its new parent reaps it in its own time.
	if err := groupGone(pgid); err != nil {
		t.Error(err)
	}
	want := []string{fmt.Sprintf("group %d true", pgid), fmt.Sprintf("group %d false", pgid)}
	if got := tr.all(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tracker saw %q, want %q", got, want)
	}
	p.Stop(syscall.SIGTERM, time.Second) // idempotent: nothing more is reported
	if got := tr.all(); len(got) != 2 {
		t.Errorf("second Stop reported again: %q", got)
	}
}

// groupGone waits (at most 10 s: it is a wait for the kernel, not a
// deadline under test) until process group pgid has no member left.
func groupGone(pgid int) error {
	var err error
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if err = syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
	}
	return fmt.Errorf("group %d still has members after Stop: %v", pgid, err)
}

func TestWaitReady(t *testing.T) {
	never := func(context.Context) error { return errors.New("not yet") }

	t.Run("exit during start-up shows the log", func(t *testing.T) {
		log := filepath.Join(t.TempDir(), "log")
		p, err := realserver.StartProc(realserver.ProcOptions{Name: "failing", Log: log},
			"/bin/sh", "-c", "echo cannot open the database >&2; exit 3")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop(syscall.SIGKILL, time.Second)
		err = p.WaitReady(t.Context(), 10*time.Second, never)
		if err == nil || !strings.Contains(err.Error(), "failing exited during start-up") ||
			!strings.Contains(err.Error(), "cannot open the database") {
			t.Errorf("WaitReady: %v", err)
		}
	})

	t.Run("timeout and cancellation", func(t *testing.T) {
		p, err := realserver.StartProc(realserver.ProcOptions{Name: "sleeper", Log: filepath.Join(t.TempDir(), "log")},
			"/bin/sleep", "30")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop(syscall.SIGKILL, time.Second)
		if err := p.WaitReady(t.Context(), 50*time.Millisecond, never); err == nil ||
			!strings.Contains(err.Error(), "sleeper not ready after 50ms: not yet") {
			t.Errorf("WaitReady past its timeout: %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := p.WaitReady(ctx, time.Minute, never); !errors.Is(err, context.Canceled) {
			t.Errorf("WaitReady with a cancelled context: %v", err)
		}
		ready := func(context.Context) error { return nil }
		if err := p.WaitReady(t.Context(), time.Second, ready); err != nil {
			t.Errorf("WaitReady with a passing probe: %v", err)
		}
	})
}

func TestLookBin(t *testing.T) {
	if p, err := realserver.LookBin("sh"); err != nil || !filepath.IsAbs(p) {
		t.Errorf("LookBin(sh) = %q, %v", p, err)
	}
	for _, name := range []string{"no-such-binary-authd", "/nonexistent/bin/authd"} {
		_, err := realserver.LookBin(name)
		if !errors.Is(err, realserver.ErrUnavailable) || !strings.Contains(err.Error(), name) {
			t.Errorf("LookBin(%s): %v, want ErrUnavailable naming it", name, err)
		}
	}
}

// TestStartAuthd starts authd from its binary, and has a configuration it
// cannot run refused as such (the harness's "n/a (config refused)").
func TestStartAuthd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts authd")
	}
	bin := testenv.BuildAuthd(t)
	dir := testenv.Dir(t)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("alice:{PLAIN}pw::::::\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	passdb := "passdb {\n  driver = %s\n  args = " + filepath.Join(dir, "users") + "\n}\n"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	_, err := realserver.StartAuthd(ctx, realserver.AuthdOptions{
		Instance: realserver.Instance{Dir: filepath.Join(dir, "refused")}, Bin: bin,
		Config: fmt.Sprintf(passdb, "no-such-driver"),
	})
	if !errors.Is(err, realserver.ErrConfigRefused) || !strings.Contains(err.Error(), "no-such-driver") {
		t.Errorf("config with an unknown driver: %v, want ErrConfigRefused naming the driver", err)
	}

	a, err := realserver.StartAuthd(ctx, realserver.AuthdOptions{
		Instance: realserver.Instance{Dir: filepath.Join(dir, "ok")}, Bin: bin,
		Config: fmt.Sprintf(passdb, "passwd-file"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	if err := realserver.AuthHandshake(ctx, a.Socket("auth-client")); err != nil {
		t.Errorf("handshake after StartAuthd: %v", err)
	}
	pid := a.PID()
	a.Stop()
	if err := groupGone(pid); err != nil {
		t.Error(err)
	}
}

// TestBenchmarkOptions: the settings only a benchmark asks for reach the
// servers, and MariaDB's scratch datadir is reported and removed.
func TestBenchmarkOptions(t *testing.T) {
	testenv.Require(t, "mariadbd", "mariadb-install-db", "mariadb", "slapd", "slapadd")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	tr := &tracker{}
	m, err := realserver.StartMariaDB(ctx, realserver.MariaDBOptions{
		Instance:       realserver.Instance{Dir: filepath.Join(testenv.Dir(t), "db"), Tracker: tr},
		BufferPoolSize: "48M", MaxConnections: 321,
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Exec(ctx, "SELECT @@innodb_buffer_pool_size, @@max_connections;")
	m.Close()
	if err != nil || strings.Fields(out)[0] != fmt.Sprint(48<<20) || strings.Fields(out)[1] != "321" {
		t.Errorf("buffer pool and max_connections: %q, %v", out, err)
	}
	for _, e := range tr.all() {
		if path, ok := strings.CutPrefix(e, "dir "); ok && strings.HasSuffix(path, " true") {
			scratch := strings.TrimSuffix(path, " true")
			if _, err := os.Stat(scratch); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("scratch datadir %s left after Close: %v", scratch, err)
			}
			if !strings.Contains(strings.Join(tr.all(), ","), "dir "+scratch+" false") {
				t.Errorf("removal of %s not reported: %q", scratch, tr.all())
			}
		}
	}

	s, err := realserver.StartSlapd(ctx, realserver.SlapdOptions{
		Instance: realserver.Instance{Dir: filepath.Join(testenv.Dir(t), "ldap")}, MaxSize: 3 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conf, err := os.ReadFile(s.Conf)
	if err != nil || !strings.Contains(string(conf), fmt.Sprintf("\nmaxsize %d\n", int64(3<<30))) {
		t.Errorf("slapd.conf lacks the map size: %v\n%s", err, conf)
	}
}
