package config

import (
	"os"
	"path/filepath"
	"strings"
)

// Role is what a listening socket speaks, derived from its name.
type Role int

const (
	// RoleClient speaks the client protocol (auth-client, Postfix's
	// private/auth, anything without a recognised suffix).
	RoleClient Role = iota
	// RoleLogin speaks the client protocol for login processes (names
	// ending in "login", e.g. auth-login and login/login).
	RoleLogin
	// RoleMaster speaks the master protocol with every command
	// (auth-master).
	RoleMaster
	// RoleUserdb speaks the master protocol without REQUEST and
	// CACHE-FLUSH (auth-userdb).
	RoleUserdb
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleLogin:
		return "login"
	case RoleMaster:
		return "master"
	case RoleUserdb:
		return "userdb"
	}
	return "unknown"
}

// RoleFromName derives a socket's role from its name exactly as Dovecot
// 2.3's auth_socket_type_get does: take the base name, then the part after
// its last '-' (or the whole base name), and compare it with "login",
// "master", "userdb", "token" and "tokenlogin"; anything else is a client
// socket. ok is false for the token roles, which authd does not implement.
func RoleFromName(name string) (role Role, ok bool) {
	base := name
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	suffix := base
	if i := strings.LastIndexByte(base, '-'); i >= 0 {
		suffix = base[i+1:]
	}
	switch suffix {
	case "login":
		return RoleLogin, true
	case "master":
		return RoleMaster, true
	case "userdb":
		return RoleUserdb, true
	case "token", "tokenlogin":
		return RoleClient, false
	}
	return RoleClient, true
}

// Listener is one UNIX socket authd listens on.
type Listener struct {
	Name  string      // as configured: a name relative to base_dir, or an absolute path
	Path  string      // the socket's path: Name under BaseDir unless absolute
	Role  Role        // from Name, see RoleFromName
	Mode  os.FileMode // permission bits for the socket file
	User  string      // owner to chown to; "" = leave as created
	Group string      // group to chown to; "" = leave as created
	// Trusted (authd's own `trusted = yes`): the clients of this socket
	// may ask the brute-force defence to leave their address alone
	// (no-penalty), as login processes do for login_trusted_networks.
	// Login sockets are always trusted.
	Trusted bool
	// Type is Dovecot 2.4's `type` of the listener (auth, login, master,
	// userdb); when set it gives the role instead of the name.
	Type string
	Pos  Pos // where it was configured; zero for a default listener
}

// roleFromType maps a 2.4 listener type to a role; ok is false for a type
// authd does not serve.
func roleFromType(t string) (Role, bool) {
	switch t {
	case "auth":
		return RoleClient, true
	case "login":
		return RoleLogin, true
	case "master":
		return RoleMaster, true
	case "userdb":
		return RoleUserdb, true
	}
	return RoleClient, false
}

// defaultListeners are Dovecot 2.3's `service auth` unix_listener defaults
// (doveconf -d), which Dovecot always creates and which configured
// unix_listener blocks of the same name modify. Differences, on purpose:
//
//   - token-login/tokenlogin is left out: authd has no token protocol.
//   - user is empty instead of $default_internal_user (dovecot): authd does
//     not assume that a "dovecot" account exists; set `user =` to chown.
func defaultListeners() []*Listener {
	return []*Listener{
		{Name: "auth-client", Role: RoleClient, Mode: 0o600},
		{Name: "auth-login", Role: RoleLogin, Mode: 0o600},
		{Name: "auth-master", Role: RoleMaster, Mode: 0o600},
		{Name: "auth-userdb", Role: RoleUserdb, Mode: 0o666},
		// 0660 in a 0750 directory of default_login_user's group: a
		// login socket trusts what its client says (rip, no-penalty).
		{Name: "login/login", Role: RoleLogin, Mode: 0o660},
	}
}

// listenerPath puts a relative socket name under base_dir.
func listenerPath(baseDir, name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(baseDir, name)
}
