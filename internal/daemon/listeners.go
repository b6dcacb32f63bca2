package daemon

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/authd-project/authd/internal/config"
)

// apply opens, keeps or closes sockets to match inst and points every
// socket at inst's handlers.
func (d *daemon) apply(inst *instance) error {
	want := map[string]config.Listener{}
	for _, l := range inst.cfg.Listeners {
		want[l.Path] = l
	}
	var opened []*listener
	for path, lc := range want {
		if old, ok := d.listeners[path]; ok {
			old.cfg = lc
			if err := setOwnerMode(path, lc); err != nil {
				return err
			}
			continue
		}
		ln, err := listenUnix(lc)
		if err != nil {
			for _, l := range opened {
				d.closeListener(l)
			}
			return err
		}
		l := &listener{cfg: lc, ln: ln}
		opened = append(opened, l)
	}
	// gRPC before anything is switched: its failure (a port in use, an
	// unreadable certificate) must leave the sockets as they were.
	if err := d.applyGRPC(inst); err != nil {
		for _, l := range opened {
			d.closeListener(l)
		}
		return err
	}
	for _, l := range opened {
		// The handler must be in place before the accept loop starts:
		// clients queue on the socket as soon as it exists.
		h := inst.handlers[l.cfg.Path]
		l.handler.Store(&h)
		d.listeners[l.cfg.Path] = l
		d.serve(l)
	}
	for path, l := range d.listeners {
		if _, ok := want[path]; !ok {
			d.closeListener(l)
			delete(d.listeners, path)
		}
	}
	for path, l := range d.listeners {
		h := inst.handlers[path]
		l.handler.Store(&h)
	}
	d.cur = inst
	d.live.Store(inst)
	return nil
}

// serve runs the accept loop of l until its socket is closed.
func (d *daemon) serve(l *listener) {
	name := l.cfg.Name // the metrics label: a configured name, never a client's
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			nc, err := l.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// EMFILE and friends: back off instead of spinning.
				d.log.Error("accept failed", "listener", l.cfg.Path, "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			h := *l.handler.Load()
			go func() {
				d.metrics.ConnOpened(name)
				defer d.metrics.ConnClosed(name)
				h(nc)
			}()
		}
	}()
}

func (d *daemon) closeListener(l *listener) {
	_ = l.ln.Close()
	_ = os.Remove(l.cfg.Path)
}

// listenUnix creates a socket at lc.Path with its mode and owner. It is
// bound under a temporary name and renamed into place, so the socket never
// exists with the wrong permissions. A stale socket file is replaced; a
// socket another live process answers on is not stolen.
func listenUnix(lc config.Listener) (*net.UnixListener, error) {
	path := lc.Path
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listener %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listener %s: the path exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listener %s: another process is listening on this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listener %s: removing stale socket: %w", path, err)
		}
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".authd-%d-%s", os.Getpid(), shortHash(path)))
	_ = os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, error) {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := setOwnerMode(tmp, lc); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("listener %s: %w", path, err))
	}
	return ln, nil
}

func shortHash(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return strconv.FormatUint(uint64(h), 36)
}

func setOwnerMode(path string, lc config.Listener) error {
	if err := os.Chmod(path, lc.Mode.Perm()); err != nil {
		return fmt.Errorf("listener %s: chmod: %w", lc.Path, err)
	}
	if lc.User == "" && lc.Group == "" {
		return nil
	}
	uid, gid := -1, -1
	if lc.User != "" {
		u, err := user.Lookup(lc.User)
		if err != nil {
			return fmt.Errorf("listener %s: user %s: %w", lc.Path, lc.User, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	if lc.Group != "" {
		g, err := user.LookupGroup(lc.Group)
		if err != nil {
			return fmt.Errorf("listener %s: group %s: %w", lc.Path, lc.Group, err)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		return fmt.Errorf("listener %s: chown: %w", lc.Path, err)
	}
	return nil
}
