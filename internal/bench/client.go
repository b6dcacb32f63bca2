package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// clientProtocol drives Dovecot's client protocol (protocol.md §1): AUTH
// with PLAIN, LOGIN or SCRAM on an auth-client or login socket.
type clientProtocol struct{}

// clientLine builds AUTH lines for one configuration.
type clientLine struct {
	mech   string
	params string // "\tservice=imap[\tno-penalty][\trip=…]", written after the mechanism
}

func (clientProtocol) Dial(ctx context.Context, cfg *Config) (Conn, error) {
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
		// trip (protocol.md §1.5). Both paths are handled below.
		params += "\tfinal-resp-ok"
	}
	c := newPipeConn(nc, &clientLine{mech: cfg.Mech, params: params})
	// Both sides may send their handshake at once (protocol.md §1.2).
	hello := fmt.Appendf(nil, "VERSION\t1\t2\nCPID\t%d\n", nextCPID())
	if _, err := nc.Write(hello); err != nil {
		nc.Close()
		return nil, err
	}
	var mechs []string
	for first := true; ; first = false {
		line, err := c.readLine()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		f := strings.Split(line, "\t")
		if first && (f[0] != "VERSION" || len(f) < 3 || f[1] != "1") {
			nc.Close()
			return nil, fmt.Errorf("handshake: want VERSION 1, got %.80q", line)
		}
		switch f[0] {
		case "VERSION", "CUID", "COOKIE":
		case "MECH":
			if len(f) > 1 {
				mechs = append(mechs, strings.ToUpper(f[1]))
			}
		case "SPID":
			if len(mechs) == 0 {
				nc.Close()
				return nil, errors.New("handshake: SPID before any MECH: this is a master socket (use the master protocol)")
			}
		case "DONE":
			for _, m := range mechs {
				if m == cfg.Mech {
					_ = nc.SetDeadline(time.Time{})
					return c, nil
				}
			}
			nc.Close()
			return nil, fmt.Errorf("server does not offer %s (it offers %s)", cfg.Mech, strings.Join(mechs, " "))
		default:
			nc.Close()
			return nil, fmt.Errorf("handshake: unexpected line %.80q", line)
		}
	}
}

var b64 = base64.StdEncoding

func (l *clientLine) start(dst []byte, p *pending) ([]byte, error) {
	dst = append(dst, "AUTH\t"...)
	dst = appendUint(dst, p.id)
	dst = append(dst, '\t')
	dst = append(dst, l.mech...)
	dst = append(dst, l.params...)
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
		dst = b64.AppendEncode(dst, raw)
	case "LOGIN":
		// No initial response, as Postfix does it: the server asks for
		// the user name and the password with two CONTs.
	default: // SCRAM-*
		s, err := newSCRAMClient(l.mech, p.req.User, p.req.Password)
		if err != nil {
			return dst, err
		}
		p.scram = s
		dst = append(dst, "\tresp="...)
		dst = b64.AppendEncode(dst, s.clientFirst())
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
	challenge, err := b64.AppendDecode(nil, data)
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
	dst = b64.AppendEncode(dst, resp)
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

// masterProtocol drives the master protocol (protocol.md §2): USER
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
	if _, err := nc.Write([]byte("VERSION\t1\t0\n")); err != nil {
		nc.Close()
		return nil, err
	}
	for first := true; ; first = false {
		line, err := c.readLine()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		f := strings.Split(line, "\t")
		if first && (f[0] != "VERSION" || len(f) < 3 || f[1] != "1") {
			nc.Close()
			return nil, fmt.Errorf("handshake: want VERSION 1, got %.80q", line)
		}
		switch f[0] {
		case "VERSION":
		case "SPID":
			_ = nc.SetDeadline(time.Time{})
			return c, nil
		case "MECH", "CUID", "COOKIE", "DONE":
			nc.Close()
			return nil, errors.New("handshake: this is a client socket (use the client protocol)")
		default:
			nc.Close()
			return nil, fmt.Errorf("handshake: unexpected line %.80q", line)
		}
	}
}

func (l *masterLine) start(dst []byte, p *pending) ([]byte, error) {
	dst = append(dst, "USER\t"...)
	dst = appendUint(dst, p.id)
	dst = append(dst, '\t')
	dst = append(dst, p.req.User...)
	dst = append(dst, l.params...)
	return append(dst, '\n'), nil
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
