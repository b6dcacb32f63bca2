package vars

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The variables of a Dovecot 2.4 auth request (auth-request-var-expand.c's
// table; docs/protocol.md §5.6): long names only, several renamed from
// 2.3 (service is protocol, lip is local_ip …), and no username/domain
// variables (the username and domain filters replace them).

type var24 uint8

const (
	v4User var24 = iota
	v4Protocol
	v4Home
	v4LocalIP
	v4RemoteIP
	v4ClientPID
	v4Password
	v4ID
	v4Mechanism
	v4Secured
	v4LocalPort
	v4RemotePort
	v4Cert
	v4LoginUser
	v4Session
	v4RealLocalIP
	v4RealRemoteIP
	v4RealLocalPort
	v4RealRemotePort
	v4DomainFirst
	v4DomainLast
	v4MasterUser
	v4SessionPID
	v4OriginalUser
	v4AuthUser
	v4LocalName
	v4ClientID
	v4SSLJA3Hash
	v4OwnerUser
	// The auth policy request's own (auth-policy.c), with ParsePolicy.
	v4RequestedUsername
	v4HashedPassword
	v4FailType
	numVars24
)

// vars24 are the names, in Dovecot's table order (which the cache key
// follows).
var vars24 = [numVars24]string{
	"user", "protocol", "home", "local_ip", "remote_ip", "client_pid", "password", "id",
	"mechanism", "secured", "local_port", "remote_port", "cert", "login_user", "session",
	"real_local_ip", "real_remote_ip", "real_local_port", "real_remote_port",
	"domain_first", "domain_last", "master_user", "session_pid", "original_user",
	"auth_user", "local_name", "client_id", "ssl_ja3_hash", "owner_user",
	"requested_username", "hashed_password", "fail_type",
}

// numAuthVars24 is the size of the auth request table proper.
const numAuthVars24 = v4RequestedUsername

func lookupVar24(name string, policy bool) (var24, bool) {
	for i, n := range vars24 {
		if n == name {
			if var24(i) >= numAuthVars24 && !policy {
				return 0, false
			}
			return var24(i), true
		}
	}
	return 0, false
}

// builtinProviders are the prefixes %{prefix:key} always resolves:
// passdb/userdb fields and lib-var-expand's own.
var builtinProviders = map[string]bool{
	"passdb": true, "userdb": true, "env": true, "process": true, "system": true,
	"dovecot": true, "event": true, "date": true, "time": true, "generate": true,
}

// value24 is a table variable's value as Dovecot 2.4 gives it: ports and
// the client pid are "0" when unknown, everything else "" when unset.
func (c *Context) value24(v var24) string {
	switch v {
	case v4User, v4OwnerUser:
		return c.User
	case v4Protocol:
		return c.Service
	case v4Home:
		return c.Home
	case v4LocalIP:
		return c.LocalIP
	case v4RemoteIP:
		return c.RemoteIP
	case v4ClientPID:
		return portOrZero(c.ClientPID)
	case v4Password:
		return c.Password
	case v4ID:
		return strconv.Itoa(c.PassdbID)
	case v4Mechanism:
		return c.Mech
	case v4Secured:
		return c.Secured
	case v4LocalPort:
		return portOrZero(c.LocalPort)
	case v4RemotePort:
		return portOrZero(c.RemotePort)
	case v4Cert:
		return c.Cert
	case v4LoginUser:
		return c.LoginUser
	case v4Session:
		return c.Session
	case v4RealLocalIP:
		return c.RealLocalIP
	case v4RealRemoteIP:
		return c.RealRemoteIP
	case v4RealLocalPort:
		return portOrZero(c.RealLocalPort)
	case v4RealRemotePort:
		return portOrZero(c.RealRemotePort)
	}
	return c.value24Rest(v)
}

func (c *Context) value24Rest(v var24) string {
	switch v {
	case v4DomainFirst:
		return c.value(vDomainFirst)
	case v4DomainLast:
		return c.value(vDomainLast)
	case v4MasterUser:
		return c.MasterUser
	case v4SessionPID:
		return c.SessionPID
	case v4OriginalUser:
		return c.origUser()
	case v4AuthUser:
		return c.authUser()
	case v4LocalName:
		return c.LocalName
	case v4ClientID:
		return c.ClientID
	case v4SSLJA3Hash:
		return c.SSLJA3Hash
	case v4RequestedUsername:
		return c.RequestedUsername
	case v4HashedPassword:
		return c.HashedPassword
	case v4FailType:
		return c.FailType
	}
	return ""
}

// lookup24 resolves a variable name or prefix:key as Dovecot 2.4 does. A
// name nothing defines gives an error with Unknown set: the pipeline may
// still go on with a filter of that name or a default().
func (c *Context) lookup24(name string, policy bool) (string, *ExpandError) {
	prefix, key, ok := strings.Cut(name, ":")
	if !ok {
		if v, ok := lookupVar24(name, policy); ok {
			return c.value24(v), nil
		}
		return "", &ExpandError{Unknown: true, Msg: fmt.Sprintf("Unknown variable '%s'", name)}
	}
	v, msg, found := c.provide24(prefix, key)
	switch {
	case !found:
		return "", &ExpandError{Msg: fmt.Sprintf("Unsupported prefix '%s'", prefix)}
	case msg != "":
		return "", &ExpandError{Msg: prefix + ": " + msg}
	}
	return v, nil
}

// provide24 answers prefix:key; found is false for an unknown prefix, msg
// is the provider's error.
func (c *Context) provide24(prefix, key string) (v, msg string, found bool) {
	switch prefix {
	case "passdb", "userdb":
		fl := c.Passdb
		if prefix == "userdb" {
			fl = c.Userdb
		}
		if fl != nil {
			if v, ok := fl.Lookup(key); ok {
				return v, "", true
			}
		}
		return "", "", true
	case "env":
		if key == "" {
			return "", "Missing field", true
		}
		return os.Getenv(key), "", true
	case "process", "system", "dovecot":
		v, msg = processValue(prefix, key)
		return v, msg, true
	case "date", "time", "generate":
		v, msg = clockValue(prefix, key)
		return v, msg, true
	case "event":
		return "", fmt.Sprintf("No such field '%s' in event", key), true
	}
	if c.Provider != "" && prefix == c.Provider {
		if c.ProviderFields != nil {
			if v, ok := c.ProviderFields.Lookup(key); ok {
				return v, "", true
			}
		}
		return "", fmt.Sprintf("No such field '%s'", key), true
	}
	return "", "", false
}

// dovecotVersion is what %{dovecot:version} gives: the Dovecot release
// whose auth process authd answers like.
var dovecotVersion = "2.4.1"

func processValue(prefix, key string) (string, string) {
	pv := getProcessValues()
	switch prefix + ":" + key {
	case "process:pid":
		return pv.pid, ""
	case "process:uid":
		return pv.uid, ""
	case "process:gid":
		return pv.gid, ""
	case "system:hostname":
		return pv.hostname, ""
	case "system:cpu_count":
		if n := os.Getenv("NCPU"); n != "" {
			return n, ""
		}
		return strconv.Itoa(runtime.NumCPU()), ""
	case "system:os":
		return pv.sysname, ""
	case "system:os-version":
		return pv.release, ""
	case "dovecot:name":
		return "Dovecot", ""
	case "dovecot:version":
		return dovecotVersion, ""
	}
	return "", fmt.Sprintf("Unsupported field '%s'", key)
}

// clockValue answers %{date:…}, %{time:…} and %{generate:…}.
func clockValue(prefix, key string) (string, string) {
	now := time.Now()
	switch prefix + ":" + key {
	case "date:year":
		return now.Format("2006"), ""
	case "date:month":
		return now.Format("01"), ""
	case "date:day":
		return now.Format("02"), ""
	case "time:hour":
		return now.Format("15"), ""
	case "time:min", "time:minute":
		return now.Format("04"), ""
	case "time:sec", "time:second":
		return now.Format("05"), ""
	case "time:us", "time:usec":
		return strconv.Itoa(now.Nanosecond() / 1000), ""
	case "generate:uuid", "generate:uuid:record":
		return uuid4(), ""
	case "generate:uuid:compact":
		return strings.ReplaceAll(uuid4(), "-", ""), ""
	case "generate:guid128":
		return randomHex(16), ""
	}
	return "", fmt.Sprintf("Unsupported key '%s'", key)
}

// uname reads the kernel's name and release for %{system:os} and
// %{system:os-version}.
func uname() (sysname, release string) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", ""
	}
	return unix.ByteSliceToString(u.Sysname[:]), unix.ByteSliceToString(u.Release[:])
}

// randomHex is n random bytes in hex, for %{generate:…}.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uuid4 is a random (version 4) UUID in its usual text form.
func uuid4() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
