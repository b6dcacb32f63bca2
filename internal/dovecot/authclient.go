package dovecot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/tabescape"
)

// AuthClient is a minimal client of the client protocol, used by
// `authd test`, the load generator and tests. It runs one request at a
// time.
type AuthClient struct {
	nc     net.Conn
	lr     *LineReader
	Mechs  []string
	SPID   string
	CUID   string
	Cookie string
	nextID uint32
}

// Reply is one server line for a request: OK, FAIL or CONT.
type Reply struct {
	Cmd    string
	ID     uint32
	Fields []string // after the id, unescaped
}

// Get returns the value of key=value among the reply's fields.
func (r Reply) Get(key string) (string, bool) {
	for _, f := range r.Fields {
		if k, v, ok := strings.Cut(f, "="); ok && k == key {
			return v, true
		} else if !ok && f == key {
			return "", true
		}
	}
	return "", false
}

// DialAuth connects to a client socket and completes the handshake.
func DialAuth(ctx context.Context, path string) (*AuthClient, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	c := &AuthClient{nc: nc, lr: NewLineReader(nc, 65536)}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(nc, "VERSION\t1\t2\nCPID\t%d\n", pidForCPID()); err != nil {
		nc.Close()
		return nil, err
	}
	for {
		line, err := c.lr.ReadLine()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("handshake: %w", err)
		}
		args := SplitLine(line)
		switch args[0] {
		case "VERSION":
			if len(args) < 2 || args[1] != "1" {
				nc.Close()
				return nil, fmt.Errorf("unsupported server version %q", line)
			}
		case "MECH":
			if len(args) > 1 {
				c.Mechs = append(c.Mechs, args[1])
			}
		case "SPID":
			c.SPID = arg(args, 1)
		case "CUID":
			c.CUID = arg(args, 1)
		case "COOKIE":
			c.Cookie = arg(args, 1)
		case "DONE":
			_ = nc.SetDeadline(time.Time{})
			return c, nil
		default:
			nc.Close()
			return nil, fmt.Errorf("unexpected handshake line %q", line)
		}
	}
}

func arg(a []string, i int) string {
	if i < len(a) {
		return a[i]
	}
	return ""
}

// cpidCounter makes every AuthClient of this process announce a distinct
// CPID, because login sockets refuse a CPID that is already connected.
var cpidCounter = newCounter()

func pidForCPID() uint32 { return cpidCounter() }

// Close closes the connection.
func (c *AuthClient) Close() error { return c.nc.Close() }

// Send writes one raw line (without LF).
func (c *AuthClient) Send(line string) error {
	_, err := c.nc.Write([]byte(line + "\n"))
	return err
}

// Read reads the next reply line.
func (c *AuthClient) Read(ctx context.Context) (Reply, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetReadDeadline(dl)
		defer c.nc.SetReadDeadline(time.Time{})
	}
	line, err := c.lr.ReadLine()
	if err != nil {
		return Reply{}, err
	}
	args := SplitLine(line)
	if len(args) < 2 {
		return Reply{}, fmt.Errorf("malformed reply %q", line)
	}
	id, ok := parseID(args[1])
	if !ok {
		return Reply{}, fmt.Errorf("malformed reply id in %q", line)
	}
	return Reply{Cmd: args[0], ID: id, Fields: args[2:]}, nil
}

// NextID returns a fresh request id.
func (c *AuthClient) NextID() uint32 {
	c.nextID++
	return c.nextID
}

// Plain runs one AUTH PLAIN exchange with an initial response and waits
// for its OK or FAIL. params are extra AUTH parameters (service=… is added
// when absent).
func (c *AuthClient) Plain(ctx context.Context, params []string, authzid, user, pass string) (Reply, error) {
	id := c.NextID()
	var b strings.Builder
	b.WriteString("AUTH\t")
	b.WriteString(strconv.FormatUint(uint64(id), 10))
	b.WriteString("\tPLAIN")
	hasService := false
	for _, p := range params {
		if strings.HasPrefix(p, "service=") {
			hasService = true
		}
	}
	if !hasService {
		b.WriteString("\tservice=authd")
	}
	for _, p := range params {
		b.WriteByte('\t')
		k, v, ok := strings.Cut(p, "=")
		b.WriteString(tabescape.Escape(k))
		if ok {
			b.WriteByte('=')
			b.WriteString(tabescape.Escape(v))
		}
	}
	b.WriteString("\tresp=")
	b.WriteString(EncodeBase64([]byte(authzid + "\x00" + user + "\x00" + pass)))
	if err := c.Send(b.String()); err != nil {
		return Reply{}, err
	}
	for {
		r, err := c.Read(ctx)
		if err != nil {
			return Reply{}, err
		}
		if r.ID != id {
			continue
		}
		if r.Cmd == "CONT" {
			return r, errors.New("server asked for a continuation to PLAIN with an initial response")
		}
		return r, nil
	}
}
