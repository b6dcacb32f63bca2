package checkpassword

import (
	"os"
	"strconv"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
)

// The child's environment, as Dovecot 2.3 builds it
// (db-checkpassword.c checkpassword_setup_env, env_put_auth_vars):
//
//	AUTHORIZED=1          lookups only: the password is not to be checked
//	PROTO=TCP, ORIG_UID   UCSPI; the reply program checks ORIG_UID against its uid
//	SERVICE
//	TCPLOCALIP, LOCAL_IP, TCPREMOTEIP, REMOTE_IP      when known
//	TCPLOCALPORT, TCPREMOTEPORT                       when not 0
//	MASTER_USER           when a master user logs in
//	NAME=value            the request's passdb fields so far, names upper-cased
//	AUTH_<VARIABLE>       every %{variable} of the request that has a value
//	                      (AUTH_USER, AUTH_SERVICE, AUTH_RIP, …), never the password
//
// Unlike Dovecot, authd does not pass its own environment on, which may
// hold secrets of its own: only PATH and TZ come from it. HOME and USER are
// never set from it either: the reply program reads them as the answer.

// authVar is one entry of Dovecot's request variable table, in its order.
type authVar struct {
	name string
	t    *vars.Template
	set  func(c *vars.Context) bool // nil: always has a value
}

func hasAt(s string) bool { return strings.Contains(s, "@") }

var authVars = func() []authVar {
	user := func(c *vars.Context) bool { return hasAt(c.User) }
	orig := func(c *vars.Context) bool {
		if c.OrigUser != "" {
			return hasAt(c.OrigUser)
		}
		return hasAt(c.User)
	}
	authU := func(c *vars.Context) bool {
		if c.MasterUser != "" {
			return hasAt(c.MasterUser)
		}
		return orig(c)
	}
	lip := func(c *vars.Context) bool { return c.LocalIP != "" }
	rip := func(c *vars.Context) bool { return c.RemoteIP != "" }
	rlip := func(c *vars.Context) bool { return c.RealLocalIP != "" || c.LocalIP != "" }
	rrip := func(c *vars.Context) bool { return c.RealRemoteIP != "" || c.RemoteIP != "" }
	login := func(c *vars.Context) bool { return c.LoginUser != "" }
	loginD := func(c *vars.Context) bool { return hasAt(c.LoginUser) }
	table := []struct {
		name string
		set  func(*vars.Context) bool
	}{
		{"user", nil}, {"username", nil}, {"domain", user}, {"service", nil},
		{"lip", lip}, {"rip", rip}, {"pid", nil}, {"mech", nil}, {"secured", nil},
		{"lport", nil}, {"rport", nil}, {"cert", nil},
		{"login_user", login}, {"login_username", login}, {"login_domain", loginD},
		{"session", func(c *vars.Context) bool { return c.Session != "" }},
		{"real_lip", rlip}, {"real_rip", rrip}, {"real_lport", nil}, {"real_rport", nil},
		{"domain_first", user}, {"domain_last", user},
		{"master_user", func(c *vars.Context) bool { return c.MasterUser != "" }},
		{"session_pid", func(c *vars.Context) bool { return c.SessionPID != "" }},
		{"orig_user", nil}, {"orig_username", nil}, {"orig_domain", orig},
		{"auth_user", nil}, {"auth_username", nil}, {"auth_domain", authU},
		{"local_name", func(c *vars.Context) bool { return c.LocalName != "" }},
		{"client_id", func(c *vars.Context) bool { return c.ClientID != "" }},
		{"local_ip", lip}, {"remote_ip", rip}, {"local_port", nil}, {"remote_port", nil},
		{"real_local_ip", rlip}, {"real_remote_ip", rrip}, {"real_local_port", nil}, {"real_remote_port", nil},
		{"mechanism", nil}, {"original_user", nil}, {"original_username", nil}, {"original_domain", orig},
	}
	out := make([]authVar, len(table))
	for i, e := range table {
		out[i] = authVar{name: e.name, t: vars.MustParse("%{" + e.name + "}"), set: e.set}
	}
	return out
}()

// childEnv builds the environment for one run.
func childEnv(req *backends.Request, authenticate bool) []string {
	var env []string
	put := func(k, v string) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return
		}
		env = append(env, k+"="+v)
	}
	for _, k := range []string{"PATH", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			put(k, v)
		}
	}
	if !authenticate {
		put("AUTHORIZED", "1")
	}
	c := req.Vars
	if c == nil {
		c = &vars.Context{User: req.User}
	}
	put("PROTO", "TCP")
	put("ORIG_UID", strconv.Itoa(os.Getuid()))
	put("SERVICE", c.Service)
	if c.LocalIP != "" {
		put("TCPLOCALIP", c.LocalIP)
		put("LOCAL_IP", c.LocalIP)
	}
	if c.RemoteIP != "" {
		put("TCPREMOTEIP", c.RemoteIP)
		put("REMOTE_IP", c.RemoteIP)
	}
	if c.LocalPort != "" && c.LocalPort != "0" {
		put("TCPLOCALPORT", c.LocalPort)
	}
	if c.RemotePort != "" && c.RemotePort != "0" {
		put("TCPREMOTEPORT", c.RemotePort)
	}
	if c.MasterUser != "" {
		put("MASTER_USER", c.MasterUser)
	}
	if fs, ok := c.Passdb.(*fields.Fields); ok && fs != nil {
		for _, f := range *fs {
			put(strings.ToUpper(f.Key), f.Value)
		}
	}
	for _, v := range authVars {
		if v.set == nil || v.set(c) {
			put("AUTH_"+strings.ToUpper(v.name), v.t.Expand(c, nil))
		}
	}
	return env
}
