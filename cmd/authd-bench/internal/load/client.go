package load

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
)

// clientProtocol drives Dovecot's client protocol (docs/protocol.md §1):
// AUTH with PLAIN, LOGIN or SCRAM on an auth-client or login socket. What
// its connections share lives here, in the value Builtin made, not in
// package state.
type clientProtocol struct {
	cpid *atomic.Uint32 // the last CPID handed out, see nextCPID
	keys *scramKeyCache
}

func newClientProtocol() *clientProtocol {
	p := &clientProtocol{cpid: new(atomic.Uint32), keys: &scramKeyCache{}}
	// A random start: login sockets refuse a CPID that another live
	// connection announced (docs/protocol.md §1.2), and other registries
	// (or other authd-bench processes) may be connected to the same socket.
	p.cpid.Store(rand.Uint32())
	return p
}

// nextCPID gives every connection of this protocol its own process id,
// never 0.
func (p *clientProtocol) nextCPID() uint32 {
	n := p.cpid.Add(1)
	if n == 0 {
		n = p.cpid.Add(1)
	}
	return n
}

// clientLine builds AUTH lines for one configuration.
type clientLine struct {
	mech   string
	params string // "\tservice=imap[\tno-penalty][\trip=…]", written after the mechanism; a request's own rip= follows
	keys   *scramKeyCache
}

func (p *clientProtocol) Dial(ctx context.Context, cfg *Config) (Conn, error) {
	nc, err := dialTarget(ctx, cfg.Target)
	if err != nil {
		return nil, err
	}
	params := "\tservice=" + cfg.Service
	if cfg.NoPenalty {
		params += "\tno-penalty"
	}
	if cfg.RemoteIP != "" {
		params += "\trip=" + cfg.RemoteIP
	}
	if strings.HasPrefix(cfg.Mech, "SCRAM-") {
		// Dovecot's own clients send it; without it the server sends the
		// final v= as a CONT and waits for an empty answer, one more round
		// trip (docs/protocol.md §1.5). Both paths are handled below.
		params += "\tfinal-resp-ok"
	}
	c := newPipeConn(nc, &clientLine{mech: cfg.Mech, params: params, keys: p.keys})
	// Both sides may send their handshake at once (docs/protocol.md §1.2).
	hello := fmt.Appendf(nil, "VERSION\t1\t2\nCPID\t%d\n", p.nextCPID())
	var mechs []string
	err = c.handshake(hello, func(f []string, line string) (bool, error) {
		switch f[0] {
		case "VERSION", "CUID", "COOKIE":
		case "MECH":
			if len(f) > 1 {
				mechs = append(mechs, strings.ToUpper(f[1]))
			}
		case "SPID":
			if len(mechs) == 0 {
				return false, errors.New("handshake: SPID before any MECH: this is a master socket (use the master protocol)")
			}
		case "DONE":
			if slices.Contains(mechs, cfg.Mech) {
				return true, nil
			}
			return false, fmt.Errorf("server does not offer %s (it offers %s)", cfg.Mech, strings.Join(mechs, " "))
		default:
			return false, fmt.Errorf("handshake: unexpected line %.80q", line)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (l *clientLine) start(dst []byte, p *pending) ([]byte, error) {
	dst = append(dst, "AUTH\t"...)
	dst = appendUint(dst, p.id)
	dst = append(dst, '\t')
	dst = append(dst, l.mech...)
	dst = append(dst, l.params...)
	dst = appendRIP(dst, p.req.RIP)
	switch l.mech {
	case "PLAIN":
		// authzid NUL authcid NUL password (RFC 4616), authzid empty.
		dst = append(dst, "\tresp="...)
		n := 2 + len(p.req.User) + len(p.req.Password)
		var stack [256]byte
		raw := stack[:0]
		if n > len(stack) {
			raw = make([]byte, 0, n)
		}
		raw = append(raw, 0)
		raw = append(raw, p.req.User...)
		raw = append(raw, 0)
		raw = append(raw, p.req.Password...)
		dst = base64.StdEncoding.AppendEncode(dst, raw)
	case "LOGIN":
		// No initial response, as Postfix does it: the server asks for
		// the user name and the password with two CONTs.
	default: // SCRAM-*
		s, err := newSCRAMClient(l.mech, p.req.User, p.req.Password, l.keys)
		if err != nil {
			return dst, err
		}
		p.scram = s
		dst = append(dst, "\tresp="...)
		dst = base64.StdEncoding.AppendEncode(dst, s.clientFirst())
	}
	return append(dst, '\n'), nil
}

func (l *clientLine) reply(dst []byte, cmd, rest []byte, p *pending) ([]byte, bool, Outcome, error) {
	switch string(cmd) {
	case "OK":
		if p.scram != nil {
			if err := p.scram.checkOK(rest, p.step); err != nil {
				return dst, false, 0, err
			}
		}
		return dst, true, OutcomeOK, nil
	case "FAIL":
		if hasField(rest, "code=temp_fail") {
			return dst, true, OutcomeTempFail, nil
		}
		return dst, true, OutcomeFail, nil
	case "CONT":
	default:
		return dst, false, 0, fmt.Errorf("unexpected reply %q", cmd)
	}
	data, _, _ := bytes.Cut(rest, []byte{'\t'})
	challenge, err := base64.StdEncoding.AppendDecode(nil, data)
	if err != nil {
		return dst, false, 0, fmt.Errorf("CONT with invalid base64: %w", err)
	}
	var resp []byte
	switch {
	case l.mech == "LOGIN" && p.step == 0:
		resp = []byte(p.req.User)
	case l.mech == "LOGIN" && p.step == 1:
		resp = []byte(p.req.Password)
	case p.scram != nil:
		resp, err = p.scram.next(challenge, p.step)
		if err != nil {
			return dst, false, 0, err
		}
	default:
		return dst, false, 0, fmt.Errorf("%s: unexpected CONT (step %d)", l.mech, p.step)
	}
	p.step++
	dst = append(dst, "CONT\t"...)
	dst = appendUint(dst, p.id)
	dst = append(dst, '\t')
	dst = base64.StdEncoding.AppendEncode(dst, resp)
	return append(dst, '\n'), false, 0, nil
}

// hasField reports whether the TAB-separated fields contain f exactly.
func hasField(fields []byte, f string) bool {
	for len(fields) > 0 {
		var x []byte
		x, fields, _ = bytes.Cut(fields, []byte{'\t'})
		if string(x) == f {
			return true
		}
	}
	return false
}

// fieldValue returns the value of key=value among TAB-separated fields.
func fieldValue(fields []byte, key string) ([]byte, bool) {
	for len(fields) > 0 {
		var x []byte
		x, fields, _ = bytes.Cut(fields, []byte{'\t'})
		if k, v, ok := bytes.Cut(x, []byte{'='}); ok && string(k) == key {
			return v, true
		}
	}
	return nil, false
}

// masterProtocol drives the master protocol (docs/protocol.md §2): USER
// lookups on an auth-userdb or auth-master socket. A lookup that finds the
// user counts as OK, NOTFOUND as Fail, FAIL as TempFail.
type masterProtocol struct{}

type masterLine struct{ params string }

func (masterProtocol) Dial(ctx context.Context, cfg *Config) (Conn, error) {
	nc, err := dialTarget(ctx, cfg.Target)
	if err != nil {
		return nil, err
	}
	params := "\tservice=" + cfg.Service
	if cfg.RemoteIP != "" {
		params += "\trip=" + cfg.RemoteIP
	}
	c := newPipeConn(nc, &masterLine{params: params})
	err = c.handshake([]byte("VERSION\t1\t0\n"), func(f []string, line string) (bool, error) {
		switch f[0] {
		case "VERSION":
			return false, nil
		case "SPID":
			return true, nil
		case "MECH", "CUID", "COOKIE", "DONE":
			return false, errors.New("handshake: this is a client socket (use the client protocol)")
		}
		return false, fmt.Errorf("handshake: unexpected line %.80q", line)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (l *masterLine) start(dst []byte, p *pending) ([]byte, error) {
	dst = append(dst, "USER\t"...)
	dst = appendUint(dst, p.id)
	dst = append(dst, '\t')
	dst = append(dst, p.req.User...)
	dst = append(dst, l.params...)
	dst = appendRIP(dst, p.req.RIP)
	return append(dst, '\n'), nil
}

// appendRIP appends a request's own rip= field, if it has one.
func appendRIP(dst []byte, rip string) []byte {
	if rip == "" {
		return dst
	}
	dst = append(dst, "\trip="...)
	return append(dst, rip...)
}

func (l *masterLine) reply(dst []byte, cmd, rest []byte, p *pending) ([]byte, bool, Outcome, error) {
	switch string(cmd) {
	case "USER":
		return dst, true, OutcomeOK, nil
	case "NOTFOUND":
		return dst, true, OutcomeFail, nil
	case "FAIL":
		return dst, true, OutcomeTempFail, nil
	}
	return dst, false, 0, fmt.Errorf("unexpected reply %q to USER", cmd)
}
