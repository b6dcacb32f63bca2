package dovecot

import (
	"crypto/subtle"
	"net/netip"
	"sync"
	"time"

	"github.com/authd-project/authd/internal/engine"
)

func netipParse(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// LoginSuccess is a finished, successful login kept on a login socket
// until a mail process claims it with the master REQUEST command
// (docs/protocol.md §2.4.4).
type LoginSuccess struct {
	Result engine.Result
	Mech   string
	Info   *engine.Info
	timer  *time.Timer
}

// LoginRegistry maps the CPIDs of live login connections to the
// connections, for REQUEST.
type LoginRegistry struct {
	mu    sync.Mutex
	conns map[uint32]*clientConn
}

// NewLoginRegistry returns an empty registry.
func NewLoginRegistry() *LoginRegistry {
	return &LoginRegistry{conns: map[uint32]*clientConn{}}
}

// add registers c under cpid; false when another live connection has it.
func (l *LoginRegistry) add(cpid uint32, c *clientConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.conns[cpid]; ok && old != c {
		return false
	}
	l.conns[cpid] = c
	return true
}

func (l *LoginRegistry) remove(cpid uint32, c *clientConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[cpid] == c {
		delete(l.conns, cpid)
	}
}

// Claim finds the successful request id of the login connection cpid if
// cookie matches that connection's COOKIE, and removes it: a request can be
// claimed once. The cookie is compared in constant time.
func (l *LoginRegistry) Claim(cpid, id uint32, cookie []byte) (*LoginSuccess, bool) {
	l.mu.Lock()
	c, ok := l.conns[cpid]
	l.mu.Unlock()
	if !ok {
		return nil, false
	}
	if len(cookie) != len(c.cookie) || subtle.ConstantTimeCompare(cookie, c.cookie[:]) != 1 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.done[id]
	if !ok {
		return nil, false
	}
	delete(c.done, id)
	s.timer.Stop()
	return s, true
}

// keepLogin stores a success for a later REQUEST; it expires after the
// request timeout like Dovecot's (docs/protocol.md §1.6).
func (c *clientConn) keepLogin(req *clientReq, res engine.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = map[uint32]*LoginSuccess{}
	}
	if old, ok := c.done[req.id]; ok {
		old.timer.Stop()
	}
	s := &LoginSuccess{Result: res, Mech: req.def.Name, Info: req.info}
	id := req.id
	s.timer = time.AfterFunc(requestTimeout, func() {
		c.mu.Lock()
		if c.done[id] == s {
			delete(c.done, id)
		}
		c.mu.Unlock()
	})
	c.done[id] = s
}
