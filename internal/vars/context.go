package vars

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// FieldLookup gives %{passdb:…}/%{userdb:…} values.
type FieldLookup interface {
	Lookup(key string) (string, bool)
}

// MapFields is a FieldLookup backed by a map (handy for tests and for
// backends that collect extra fields in a map).
type MapFields map[string]string

// Lookup implements FieldLookup.
func (m MapFields) Lookup(key string) (string, bool) {
	v, ok := m[key]
	return v, ok
}

// Context holds one auth request's values.
//
// The engine fills it the way Dovecot fills its request fields
// (docs/protocol.md §5.2, §1.3): an lip/rip/lport/rport without an explicit
// real_* counterpart also sets the real_* value, IPs are in canonical text
// form, and "secured=tls" becomes Secured "TLS" while any other "secured"
// becomes "secured".
type Context struct {
	User       string // %u (after name processing)
	OrigUser   string // %{orig_user} (name as typed, before translation/format); "" = same as User
	MasterUser string // %{master_user}
	LoginUser  string // %{login_user} (master-user target)

	Service, Mech string // %s, %m

	LocalIP, RemoteIP, LocalPort, RemotePort string // %l %r %a %b; an empty port expands to "0" as in Dovecot

	RealLocalIP, RealRemoteIP, RealLocalPort, RealRemotePort string // %{real_*}; empty port -> "0"

	ClientPID string // %p, %{pid}; empty -> "0" (Dovecot 2.3.19 was seen to give "0" always)
	Password  string // %w (plaintext from the client; may be empty)
	PassdbID  int    // %!: id of the passdb, or of the userdb for userdb lookups (docs/protocol.md §5.9 cache keys use it)
	Secured   string // %c: "secured", "TLS" or ""
	Cert      string // %k: "valid" or ""

	Session, SessionPID, LocalName, ClientID string

	Home string // %h; Dovecot 2.3's auth process never sets it, leave empty for identical output

	// The auth policy request's own values (templates from ParsePolicy):
	// %{requested_username} and %{hashed_password}; 2.4 adds
	// %{fail_type}.
	RequestedUsername, HashedPassword, FailType string

	// SSLJA3Hash is 2.4's %{ssl_ja3_hash}, the TLS client fingerprint a
	// login process may send (empty when it does not).
	SSLJA3Hash string

	Passdb, Userdb FieldLookup
	// OAuth2 holds the token's fields for the oauth2 passdb's pass_attrs
	// (%{oauth2:…}, %$; templates from ParseOAuth2Fields only).
	OAuth2 FieldLookup

	// Provider names the fields of the driver whose result a Dovecot 2.4
	// fields { } template is expanding: %{<Provider>:name} looks name up
	// in ProviderFields (%{passwd_file:uid}, %{ldap:mail}), and a name it
	// lacks fails the expansion. Empty outside such templates.
	Provider       string
	ProviderFields FieldLookup
}

// varID indexes varTable. The order is Dovecot's request table order
// (auth-request-var-expand.c), which the cache key (docs/protocol.md §5.9) relies on.
type varID uint8

const (
	vUser varID = iota
	vUsername
	vDomain
	vService
	vHome
	vLIP
	vRIP
	vPID
	vPassword
	vPassdbID
	vMech
	vSecured
	vLPort
	vRPort
	vCert
	vLoginUser
	vLoginUsername
	vLoginDomain
	vSession
	vRealLIP
	vRealRIP
	vRealLPort
	vRealRPort
	vDomainFirst
	vDomainLast
	vMasterUser
	vSessionPID
	vOrigUser
	vOrigUsername
	vOrigDomain
	vAuthUser
	vAuthUsername
	vAuthDomain
	vLocalName
	vClientID
	// aliases
	vLocalIP
	vRemoteIP
	vLocalPort
	vRemotePort
	vRealLocalIP
	vRealRemoteIP
	vRealLocalPort
	vRealRemotePort
	vMechanism
	vOriginalUser
	vOriginalUsername
	vOriginalDomain
	numVars
)

type varDef struct {
	short  byte   // 0 = no short form
	long   string // "" = no long form (only %!)
	canon  varID  // the variable an alias stands for
	escape bool   // Dovecot passes the value through the escape function
}

// varTable mirrors the table of docs/protocol.md §5.6 in Dovecot's order.
var varTable = [numVars]varDef{
	vUser:             {'u', "user", vUser, true},
	vUsername:         {'n', "username", vUsername, true},
	vDomain:           {'d', "domain", vDomain, true},
	vService:          {'s', "service", vService, true},
	vHome:             {'h', "home", vHome, false},
	vLIP:              {'l', "lip", vLIP, false},
	vRIP:              {'r', "rip", vRIP, false},
	vPID:              {'p', "pid", vPID, false},
	vPassword:         {'w', "password", vPassword, true},
	vPassdbID:         {'!', "", vPassdbID, false},
	vMech:             {'m', "mech", vMech, true},
	vSecured:          {'c', "secured", vSecured, false},
	vLPort:            {'a', "lport", vLPort, false},
	vRPort:            {'b', "rport", vRPort, false},
	vCert:             {'k', "cert", vCert, false},
	vLoginUser:        {0, "login_user", vLoginUser, true},
	vLoginUsername:    {0, "login_username", vLoginUsername, true},
	vLoginDomain:      {0, "login_domain", vLoginDomain, true},
	vSession:          {0, "session", vSession, true},
	vRealLIP:          {0, "real_lip", vRealLIP, false},
	vRealRIP:          {0, "real_rip", vRealRIP, false},
	vRealLPort:        {0, "real_lport", vRealLPort, false},
	vRealRPort:        {0, "real_rport", vRealRPort, false},
	vDomainFirst:      {0, "domain_first", vDomainFirst, true},
	vDomainLast:       {0, "domain_last", vDomainLast, true},
	vMasterUser:       {0, "master_user", vMasterUser, true},
	vSessionPID:       {0, "session_pid", vSessionPID, false},
	vOrigUser:         {0, "orig_user", vOrigUser, true},
	vOrigUsername:     {0, "orig_username", vOrigUsername, true},
	vOrigDomain:       {0, "orig_domain", vOrigDomain, true},
	vAuthUser:         {0, "auth_user", vAuthUser, true},
	vAuthUsername:     {0, "auth_username", vAuthUsername, true},
	vAuthDomain:       {0, "auth_domain", vAuthDomain, true},
	vLocalName:        {0, "local_name", vLocalName, true},
	vClientID:         {0, "client_id", vClientID, true},
	vLocalIP:          {0, "local_ip", vLIP, false},
	vRemoteIP:         {0, "remote_ip", vRIP, false},
	vLocalPort:        {0, "local_port", vLPort, false},
	vRemotePort:       {0, "remote_port", vRPort, false},
	vRealLocalIP:      {0, "real_local_ip", vRealLIP, false},
	vRealRemoteIP:     {0, "real_remote_ip", vRealRIP, false},
	vRealLocalPort:    {0, "real_local_port", vRealLPort, false},
	vRealRemotePort:   {0, "real_remote_port", vRealRPort, false},
	vMechanism:        {0, "mechanism", vMech, true},
	vOriginalUser:     {0, "original_user", vOrigUser, true},
	vOriginalUsername: {0, "original_username", vOrigUsername, true},
	vOriginalDomain:   {0, "original_domain", vOrigDomain, true},
}

func lookupShort(c byte) (varID, bool) {
	for i := range varTable {
		if varTable[i].short == c && c != 0 {
			return varID(i), true
		}
	}
	return 0, false
}

func lookupLong(name string) (varID, bool) {
	if name == "" {
		return 0, false
	}
	for i := range varTable {
		if varTable[i].long == name {
			return varID(i), true
		}
	}
	return 0, false
}

// policyVar is one of the variables only auth policy requests have
// (Dovecot's auth-policy.c adds them in front of the request table).
type policyVar uint8

const (
	pvHashedPassword policyVar = iota
	pvRequestedUsername
)

func lookupPolicy(name string) (policyVar, bool) {
	switch name {
	case "hashed_password":
		return pvHashedPassword, true
	case "requested_username":
		return pvRequestedUsername, true
	}
	return 0, false
}

// policyValue returns a policy variable's value; Dovecot escapes both.
func (c *Context) policyValue(v policyVar) string {
	if v == pvHashedPassword {
		return c.HashedPassword
	}
	return c.RequestedUsername
}

// userPart is Dovecot's t_strcut(s, '@'): everything before the first '@'.
func userPart(s string) string {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		return s[:i]
	}
	return s
}

// domainPart is i_strchr_to_next(s, '@'): everything after the first '@',
// "" if there is none (docs/protocol.md §5.6: %d uses the first '@').
func domainPart(s string) string {
	if i := strings.IndexByte(s, '@'); i >= 0 {
		return s[i+1:]
	}
	return ""
}

func portOrZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// value returns the unescaped value of a table variable. It never
// allocates except for %! (an int).
func (c *Context) value(id varID) string {
	switch varTable[id].canon {
	case vUser:
		return c.User
	case vUsername:
		return userPart(c.User)
	case vDomain:
		return domainPart(c.User)
	case vService:
		return c.Service
	case vHome:
		return c.Home
	case vLIP:
		return c.LocalIP
	case vRIP:
		return c.RemoteIP
	case vPID:
		return portOrZero(c.ClientPID)
	case vPassword:
		return c.Password
	case vPassdbID:
		return strconv.Itoa(c.PassdbID)
	case vMech:
		return c.Mech
	case vSecured:
		return c.Secured
	case vLPort:
		return portOrZero(c.LocalPort)
	case vRPort:
		return portOrZero(c.RemotePort)
	case vCert:
		return c.Cert
	case vLoginUser:
		return c.LoginUser
	case vLoginUsername:
		return userPart(c.LoginUser)
	case vLoginDomain:
		return domainPart(c.LoginUser)
	case vSession:
		return c.Session
	case vRealLIP:
		return c.RealLocalIP
	case vRealRIP:
		return c.RealRemoteIP
	case vRealLPort:
		return portOrZero(c.RealLocalPort)
	case vRealRPort:
		return portOrZero(c.RealRemotePort)
	case vDomainFirst:
		// Text after the first '@' up to the next '@'.
		return userPart(domainPart(c.User))
	case vDomainLast:
		if i := strings.LastIndexByte(c.User, '@'); i >= 0 {
			return c.User[i+1:]
		}
		return ""
	case vMasterUser:
		return c.MasterUser
	case vSessionPID:
		return c.SessionPID
	case vOrigUser:
		return c.origUser()
	case vOrigUsername:
		return userPart(c.origUser())
	case vOrigDomain:
		return domainPart(c.origUser())
	case vAuthUser:
		return c.authUser()
	case vAuthUsername:
		return userPart(c.authUser())
	case vAuthDomain:
		return domainPart(c.authUser())
	case vLocalName:
		return c.LocalName
	case vClientID:
		return c.ClientID
	}
	return ""
}

func (c *Context) origUser() string {
	if c.OrigUser != "" {
		return c.OrigUser
	}
	return c.User
}

// authUser: the master user if there is one, else the original user (docs/protocol.md §5.6).
func (c *Context) authUser() string {
	if c.MasterUser != "" {
		return c.MasterUser
	}
	return c.origUser()
}

// appendValue appends a table variable's value, escaped when Dovecot
// escapes it.
func (c *Context) appendValue(dst []byte, id varID, escape func(string) string) []byte {
	if id == vPassdbID {
		return strconv.AppendInt(dst, int64(c.PassdbID), 10)
	}
	v := c.value(id)
	if escape != nil && varTable[id].escape {
		v = escape(v)
	}
	return append(dst, v...)
}

// Process-level values (%{hostname}, %{uid}, %{gid}). They are fixed for
// the life of the process; tests may replace procValues.
type processValues struct {
	hostname, uid, gid string
	// Dovecot 2.4's %{process:pid}, %{system:os} and %{system:os-version}.
	pid, sysname, release string
}

var (
	procOnce   sync.Once
	procValues *processValues
)

func getProcessValues() *processValues {
	procOnce.Do(func() {
		if procValues != nil {
			return
		}
		h, _ := os.Hostname()
		sys, rel := uname()
		procValues = &processValues{
			hostname: h,
			uid:      strconv.Itoa(os.Geteuid()),
			gid:      strconv.Itoa(os.Getegid()),
			pid:      strconv.Itoa(os.Getpid()),
			sysname:  sys,
			release:  rel,
		}
	})
	return procValues
}
