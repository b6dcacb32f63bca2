package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/ratelog"
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
			if err := old.sock.setOwnerMode(lc, inst.cfg.LoginUser); err != nil {
				return err
			}
			continue
		}
		ln, sock, err := listenUnix(lc, inst.cfg.LoginUser)
		if err != nil {
			for _, l := range opened {
				d.closeListener(l)
			}
			return err
		}
		l := &listener{cfg: lc, ln: ln, sock: sock}
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

// acceptBackoff is the pause after a failed accept. EMFILE leaves the
// connection in the backlog, so the next accept fails at once: without a
// pause the loop would spin on a core until a descriptor frees up.
const acceptBackoff = 100 * time.Millisecond

// serve runs the accept loop of l until its socket is closed.
func (d *daemon) serve(l *listener) {
	name := l.cfg.Name // the metrics label: a configured name, never a client's
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		var errLog ratelog.Limiter
		for {
			nc, err := l.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				// EMFILE and friends: back off instead of spinning, and
				// say so at most once a second.
				errLog.Log(d.log, slog.LevelError, "accept failed", "listener", l.cfg.Path, "err", err)
				time.Sleep(acceptBackoff)
				continue
			}
			d.logPeer(l, nc)
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
	l.sock.remove()
}

// logPeer logs, at debug level, who connected: every socket kind.
func (d *daemon) logPeer(l *listener, nc net.Conn) {
	if !d.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if cred, err := peerCred(nc); err == nil {
		d.log.Debug("connection", "listener", l.cfg.Name, "peer_pid", cred.Pid, "peer_uid", cred.Uid, "peer_gid", cred.Gid)
	}
}
