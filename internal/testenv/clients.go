package testenv

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Minimal line-protocol clients for interop tests. They speak just enough
// SMTP, IMAP, POP3 and LMTP to log in or deliver and report the server's
// replies verbatim; anything unexpected is returned, not interpreted.
//
// addr is "host:port" or an absolute unix socket path. ctx bounds the whole
// exchange; without a deadline in ctx, one minute applies, so a stuck server
// cannot hang a test until go test's global timeout.

// Reply is one SMTP/LMTP reply: its code and its text (the lines of a
// multi-line reply joined with "\n", codes stripped).
type Reply struct {
	Code int
	Text string
}

func (r Reply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

// lineConn is a connection with CRLF line I/O whose deadline follows ctx.
type lineConn struct {
	c    net.Conn
	r    *bufio.Reader
	stop func() bool
}

type sourceIPKey struct{}

// WithSourceIP makes the clients in this package connect over TCP from ip,
// typically another loopback address such as 127.0.0.2 (Linux routes all of
// 127/8 to lo). Servers then see a distinct client address — Postfix and
// Dovecot's login processes pass it on as rip=. Use it to keep per-IP state
// apart: Dovecot's and authd's failure penalties, allow_nets, rate limits.
func WithSourceIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, sourceIPKey{}, net.ParseIP(ip))
}

func dialLine(ctx context.Context, addr string) (*lineConn, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	var d net.Dialer
	if ip, _ := ctx.Value(sourceIPKey{}).(net.IP); ip != nil && network == "tcp" {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(time.Minute))
	}
	// Cancelling ctx unblocks any read or write in progress.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return &lineConn{c: c, r: bufio.NewReader(c), stop: stop}, nil
}

func (l *lineConn) Close() error {
	l.stop()
	return l.c.Close()
}

func (l *lineConn) send(line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return errors.New("testenv: CR or LF inside a command line")
	}
	_, err := l.c.Write([]byte(line + "\r\n"))
	return err
}

func (l *lineConn) readLine() (string, error) {
	s, err := l.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// reply reads an SMTP/LMTP reply: "250-..." lines up to the final "250 ...".
func (l *lineConn) reply() (Reply, error) {
	var text []string
	for {
		line, err := l.readLine()
		if err != nil {
			return Reply{}, err
		}
		if len(line) < 3 {
			return Reply{}, fmt.Errorf("malformed reply %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return Reply{}, fmt.Errorf("malformed reply %q", line)
		}
		rest := line[3:]
		text = append(text, strings.TrimPrefix(strings.TrimPrefix(rest, "-"), " "))
		if len(rest) == 0 || rest[0] != '-' {
			return Reply{Code: code, Text: strings.Join(text, "\n")}, nil
		}
	}
}

func (l *lineConn) cmd(line string) (Reply, error) {
	if err := l.send(line); err != nil {
		return Reply{}, err
	}
	return l.reply()
}

// smtpHello reads the greeting and sends EHLO (or LHLO for LMTP).
func smtpHello(l *lineConn, verb string) (Reply, error) {
	r, err := l.reply()
	if err != nil {
		return r, err
	}
	if r.Code != 220 {
		return r, fmt.Errorf("greeting: %v", r)
	}
	r, err = l.cmd(verb + " authd-test.localdomain")
	if err == nil && r.Code != 250 {
		err = fmt.Errorf("%s: %v", verb, r)
	}
	return r, err
}

// SMTPAuth connects, says EHLO and runs AUTH PLAIN (with an initial
// response, authzid empty) or AUTH LOGIN (user and password in answer to the
// two 334 prompts). It returns the final reply — 235 on success, 535 on bad
// credentials, 454 on a temporary failure — or the first reply that was not
// 334 during LOGIN. err is for transport and protocol errors only.
func SMTPAuth(ctx context.Context, addr, mech, user, pass string) (code int, msg string, err error) {
	l, err := dialLine(ctx, addr)
	if err != nil {
		return 0, "", err
	}
	defer l.Close()
	if _, err := smtpHello(l, "EHLO"); err != nil {
		return 0, "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	var r Reply
	switch strings.ToUpper(mech) {
	case "PLAIN":
		r, err = l.cmd("AUTH PLAIN " + b64([]byte("\x00"+user+"\x00"+pass)))
	case "LOGIN":
		r, err = l.cmd("AUTH LOGIN")
		for _, answer := range []string{user, pass} {
			if err != nil || r.Code != 334 {
				break
			}
			r, err = l.cmd(b64([]byte(answer)))
		}
	default:
		return 0, "", fmt.Errorf("testenv: SMTPAuth: mechanism %q not supported (PLAIN, LOGIN)", mech)
	}
	if err != nil {
		return 0, "", err
	}
	_ = l.send("QUIT")
	return r.Code, r.Text, nil
}

// SMTPMechanisms returns the SASL mechanisms the server lists in its EHLO
// reply's AUTH line (nil when there is none).
func SMTPMechanisms(ctx context.Context, addr string) ([]string, error) {
	l, err := dialLine(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	r, err := smtpHello(l, "EHLO")
	if err != nil {
		return nil, err
	}
	_ = l.send("QUIT")
	for _, line := range strings.Split(r.Text, "\n") {
		// The standard line; the pre-RFC "AUTH=PLAIN LOGIN" duplicate that
		// broken_sasl_auth_clients adds does not match and is ignored.
		if kw, rest, ok := strings.Cut(line, " "); ok && strings.EqualFold(kw, "AUTH") {
			return strings.Fields(rest), nil
		}
	}
	return nil, nil
}

// IMAPLogin connects, runs LOGIN and, if it succeeded, SELECT INBOX, then
// LOGOUT. It returns the tagged response lines, e.g. "a1 OK [CAPABILITY ...]
// Logged in" and "a2 OK [READ-WRITE] Select completed"; sel is empty when
// LOGIN failed ("a1 NO [AUTHENTICATIONFAILED] ...").
func IMAPLogin(ctx context.Context, addr, user, pass string) (login, sel string, err error) {
	qu, err := imapQuote(user)
	if err != nil {
		return "", "", err
	}
	qp, err := imapQuote(pass)
	if err != nil {
		return "", "", err
	}
	return imapSession(ctx, addr, func(l *lineConn) (string, error) {
		return imapTagged(l, "a1", "LOGIN "+qu+" "+qp)
	})
}

// IMAPAuthenticatePlain is IMAPLogin with "AUTHENTICATE PLAIN" (RFC 4959's
// exchange without an initial response: the server's "+" continuation,
// then the base64 of NUL user NUL pass) instead of LOGIN. It returns the
// tagged replies to AUTHENTICATE and SELECT INBOX.
func IMAPAuthenticatePlain(ctx context.Context, addr, user, pass string) (auth, sel string, err error) {
	return imapSession(ctx, addr, func(l *lineConn) (string, error) {
		if err := l.send("a1 AUTHENTICATE PLAIN"); err != nil {
			return "", err
		}
		line, err := l.readLine()
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(line, "+") {
			return line, nil // refused before the exchange: the tagged NO/BAD
		}
		if err := l.send(base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))); err != nil {
			return "", err
		}
		return imapReplyTo(l, "a1")
	})
}

// imapSession reads the greeting, runs login (which returns its tagged
// reply) and, if that succeeded, SELECT INBOX, then says LOGOUT.
func imapSession(ctx context.Context, addr string, login func(*lineConn) (string, error)) (auth, sel string, err error) {
	l, err := dialLine(ctx, addr)
	if err != nil {
		return "", "", err
	}
	defer l.Close()
	greet, err := l.readLine()
	if err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(greet, "* OK") {
		return "", "", fmt.Errorf("imap greeting %q", greet)
	}
	if auth, err = login(l); err != nil {
		return auth, "", err
	}
	if strings.HasPrefix(auth, "a1 OK") {
		if sel, err = imapTagged(l, "a2", "SELECT INBOX"); err != nil {
			return auth, sel, err
		}
	}
	_ = l.send("a3 LOGOUT")
	return auth, sel, nil
}

// imapTagged sends tag+" "+command and returns the response tagged with
// tag.
func imapTagged(l *lineConn, tag, command string) (string, error) {
	if err := l.send(tag + " " + command); err != nil {
		return "", err
	}
	return imapReplyTo(l, tag)
}

// imapReplyTo reads up to the response line tagged with tag, skipping
// untagged ones.
func imapReplyTo(l *lineConn, tag string) (string, error) {
	for {
		line, err := l.readLine()
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(line, tag+" ") {
			return line, nil
		}
	}
}

// imapQuote makes an IMAP quoted string (RFC 3501 §4.3); values that need a
// literal are refused, since tests do not need them.
func imapQuote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", fmt.Errorf("testenv: %q needs an IMAP literal", s)
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

// POP3Login connects, sends USER and PASS, then QUIT. It returns the reply
// line to PASS ("+OK Logged in." or "-ERR [AUTH] Authentication failed."), or
// the reply to USER if that was not +OK.
func POP3Login(ctx context.Context, addr, user, pass string) (reply string, err error) {
	replies, err := POP3Session(ctx, addr, user, pass)
	if len(replies) > 0 {
		reply = replies[len(replies)-1]
	}
	return reply, err
}

// POP3Session connects, sends USER, PASS and, once logged in, each of cmds
// (single-line commands such as "STAT"), then QUIT. It returns the reply
// lines in order, ending early at the first one of USER and PASS that is
// not +OK: for example ["+OK", "+OK Logged in.", "+OK 1 193"] for
// POP3Session(ctx, addr, u, p, "STAT").
func POP3Session(ctx context.Context, addr, user, pass string, cmds ...string) (replies []string, err error) {
	l, err := dialLine(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	greet, err := l.readLine()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(greet, "+OK") {
		return nil, fmt.Errorf("pop3 greeting %q", greet)
	}
	for i, c := range append([]string{"USER " + user, "PASS " + pass}, cmds...) {
		if err := l.send(c); err != nil {
			return replies, err
		}
		reply, err := l.readLine()
		if err != nil {
			return replies, err
		}
		replies = append(replies, reply)
		if i < 2 && !strings.HasPrefix(reply, "+OK") {
			break
		}
	}
	_ = l.send("QUIT")
	return replies, nil
}

// LMTPDeliver connects, says LHLO, MAIL FROM:<from>, one RCPT TO per
// recipient and, if any was accepted, DATA with msg (line endings normalised
// to CRLF, dot-stuffed). It returns the RCPT replies and the DATA replies
// (one per accepted recipient, as LMTP does; nil when none was accepted).
// A MAIL FROM that is not accepted is an error.
func LMTPDeliver(ctx context.Context, addr, from string, to []string, msg string) (rcpt, data []Reply, err error) {
	l, err := dialLine(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	defer l.Close()
	if _, err := smtpHello(l, "LHLO"); err != nil {
		return nil, nil, err
	}
	r, err := l.cmd("MAIL FROM:<" + from + ">")
	if err != nil {
		return nil, nil, err
	}
	if r.Code != 250 {
		return nil, nil, fmt.Errorf("MAIL FROM: %v", r)
	}
	accepted := 0
	for _, rc := range to {
		r, err := l.cmd("RCPT TO:<" + rc + ">")
		if err != nil {
			return rcpt, nil, err
		}
		rcpt = append(rcpt, r)
		if r.Code/100 == 2 {
			accepted++
		}
	}
	if accepted == 0 {
		_ = l.send("QUIT")
		return rcpt, nil, nil
	}
	r, err = l.cmd("DATA")
	if err != nil {
		return rcpt, nil, err
	}
	if r.Code != 354 {
		return rcpt, []Reply{r}, nil
	}
	var body strings.Builder
	for line := range strings.Lines(strings.ReplaceAll(msg, "\r\n", "\n")) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, ".") {
			body.WriteString(".")
		}
		body.WriteString(line + "\r\n")
	}
	body.WriteString(".\r\n")
	if _, err := l.c.Write([]byte(body.String())); err != nil {
		return rcpt, nil, err
	}
	for range accepted {
		r, err := l.reply()
		if err != nil {
			return rcpt, data, err
		}
		data = append(data, r)
	}
	_ = l.send("QUIT")
	return rcpt, data, nil
}
