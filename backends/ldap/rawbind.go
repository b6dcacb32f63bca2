package ldap

import (
	"context"
	"errors"
	"fmt"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// User binds (auth_bind) on bare sockets. A bind is one request and one
// response on a connection that carries nothing else, so it needs none
// of go-ldap's machinery: its reader goroutine, the hand-off of every
// message through channels and the per-request bookkeeping cost about
// as much CPU as slapd's side of the bind (at a fixed rate of logins,
// authd spent twice Dovecot's CPU per auth_bind login). The auth pool's
// connections are therefore plain sockets, and a bind writes its request
// and reads its response itself; the request and the reading of the
// response are those of the connection set-up (rawExchange), so results
// and errors are go-ldap's types as before.

// newRawPool is a pool of bare connections for user binds.
func newRawPool(d *dialer, size int) *pool {
	p := newPool(d, nil, size)
	p.raw = true
	return p
}

// errEmptyPassword is go-ldap's refusal of a simple bind without a
// password (an unauthenticated bind would succeed), kept word for word.
var errEmptyPassword = goldap.NewError(goldap.ErrorEmptyPassword, errors.New("ldap: empty password not allowed by the client"))

// bind checks password with a simple bind as dn on a raw pool.
func (p *pool) bindAs(ctx context.Context, dn string, password []byte) error {
	if len(password) == 0 {
		return errEmptyPassword
	}
	return p.do(ctx, func(pc *pconn) error {
		return rawOp(ctx, pc, p.d.timeout, func() error {
			pc.lastID++
			return bindExchange(pc, pc.lastID, dn, string(password))
		})
	})
}

// bindExchange sends a simple bind and reads its response. Any other
// message in its place (a Notice of Disconnection, id 0, from a server
// going away) is a network error, as go-ldap made it: the connection is
// dropped and the bind tried again on a new one.
func bindExchange(pc *pconn, id int64, dn, password string) error {
	resp, err := rawRoundTrip(pc.nc, pc.br, id, simpleBindRequest(dn, password))
	if err != nil {
		return err
	}
	if gotID, ok := resp.Children[0].Value.(int64); !ok || gotID != id {
		return goldap.NewError(goldap.ErrorNetwork, fmt.Errorf("message id %v instead of the bind response", resp.Children[0].Value))
	}
	if resp.Children[1].Tag != goldap.ApplicationBindResponse {
		return goldap.NewError(goldap.ErrorUnexpectedResponse, fmt.Errorf("operation %d instead of the bind response", resp.Children[1].Tag))
	}
	return goldap.GetLDAPError(resp)
}

// rawOp runs fn on pc's socket with a deadline: the context's or limit,
// whichever comes first. A cancelled context closes the socket, which
// ends fn at once. A failure that is not the server's answer leaves the
// socket unusable (a response may still be on its way).
func rawOp(ctx context.Context, pc *pconn, limit time.Duration, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if !time.Now().Before(deadline) {
		return context.DeadlineExceeded
	}
	if err := pc.nc.SetDeadline(deadline); err != nil {
		pc.broken = true
		return goldap.NewError(goldap.ErrorNetwork, err)
	}
	stop := context.AfterFunc(ctx, func() { pc.nc.Close() })
	err := fn()
	if !healthyAfter(err) || !serverAnswered(err) && err != nil {
		pc.broken = true
	}
	if !stop() {
		pc.broken = true
		if err != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
	}
	return err
}
