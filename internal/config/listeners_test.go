package config

import "testing"

func TestRoleFromName(t *testing.T) {
	tests := []struct {
		name string
		role Role
		ok   bool
	}{
		{"auth-client", RoleClient, true},
		{"auth-login", RoleLogin, true},
		{"login/login", RoleLogin, true},
		{"login", RoleLogin, true},
		{"auth-master", RoleMaster, true},
		{"/var/run/x/foo-master", RoleMaster, true},
		{"auth-userdb", RoleUserdb, true},
		{"userdb", RoleUserdb, true},
		{"/var/spool/postfix/private/auth", RoleClient, true},
		{"my-login-thing", RoleClient, true}, // suffix is "thing"
		{"auth-Login", RoleClient, true},     // case-sensitive, as in Dovecot
		{"master/x", RoleClient, true},       // only the base name counts
		{"token-login/tokenlogin", RoleClient, false},
		{"auth-token", RoleClient, false},
	}
	for _, tt := range tests {
		role, ok := RoleFromName(tt.name)
		if role != tt.role || ok != tt.ok {
			t.Errorf("%q -> %v, %v; want %v, %v", tt.name, role, ok, tt.role, tt.ok)
		}
	}
}
