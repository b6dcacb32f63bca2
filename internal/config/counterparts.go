package config

import "strings"

// Settings renamed or replaced between Dovecot 2.3 and 2.4. A file read in
// one language that uses a name of the other gets an error naming the
// counterpart, instead of a bare "unknown setting".

// to24 maps a 2.3 setting (or a passdb/userdb block key, as "block:key")
// to what a 2.4 configuration writes instead.
var to24 = map[string]string{
	"disable_plaintext_auth":           "write auth_allow_cleartext (inverted: disable_plaintext_auth = no is auth_allow_cleartext = yes)",
	"auth_default_realm":               "write auth_default_domain",
	"auth_worker_max_count":            "write service auth-worker { process_limit = N }",
	"auth_stats":                       "remove it (2.4 has no auth_stats)",
	"auth_policy_server_timeout_msecs": "write auth_policy { http_client_request_absolute_timeout = 2s }",
	"mail_location":                    "write mail_driver and mail_path",
	"block:args":                       "write the driver's own settings (passwd_file_path, ldap_*, sql_driver with mysql { } …)",
	"block:default_fields":             "write fields { name:default = value }",
	"block:override_fields":            "write fields { name = value }",
	"block:mechanisms":                 "write mechanisms_filter",
	"block:pass":                       "write result_success = continue",
	"block:connect":                    "write sql_driver and a mysql HOST { } (or pgsql, sqlite_path) section",
	"block:password_query":             "write passdb sql { query = … }",
	"block:user_query":                 "write userdb sql { query = … }",
	"block:iterate_query":              "write userdb sql { iterate_query = … }",
	"block:default_pass_scheme":        "write default_password_scheme",
}

// to23 maps a 2.4 setting to what a 2.3 configuration writes instead.
var to23 = map[string]string{
	"auth_allow_cleartext":           "write disable_plaintext_auth (inverted)",
	"auth_default_domain":            "write auth_default_realm",
	"passwd_file_path":               "write args = PATH in the passdb/userdb block",
	"fields":                         "write default_fields / override_fields",
	"passdb_fields":                  "write default_fields / override_fields",
	"userdb_fields":                  "write default_fields / override_fields",
	"mechanisms_filter":              "write mechanisms",
	"passdb_mechanisms_filter":       "write mechanisms",
	"default_password_scheme":        "write scheme= in args (or default_pass_scheme in dovecot-sql.conf.ext)",
	"passdb_default_password_scheme": "write scheme= in args (or default_pass_scheme in dovecot-sql.conf.ext)",
	"sql_driver":                     "write driver in dovecot-sql.conf.ext (or sql_driver inside the passdb block)",
	"query":                          "write password_query/user_query in dovecot-sql.conf.ext",
	"passdb_sql_query":               "write password_query in dovecot-sql.conf.ext",
	"userdb_sql_query":               "write user_query in dovecot-sql.conf.ext",
	"mysql":                          "write connect = host=… in dovecot-sql.conf.ext",
	"auth_internal_failure_delay":    "remove it (2.3 has no such setting)",
	"auth_allow_weak_schemes":        "remove it (2.3 has no such setting)",
	"oauth2":                         "write the oauth2 settings in dovecot-oauth2.conf.ext",
}

// counterpart23 is the hint for a 2.3 name met in a 2.4 file.
func counterpart23(key string, f filter24) string {
	if f.name == "passdb" || f.name == "userdb" {
		if h, ok := to24["block:"+key]; ok {
			return h
		}
	}
	if h, ok := to24[key]; ok {
		return h
	}
	if hasKey(dovecotRootDefaults, key) {
		return "Dovecot 2.4 has no such setting (see Dovecot's 2.3 to 2.4 upgrade notes)"
	}
	return ""
}

// counterpart24 is the hint for a 2.4 name met in a 2.3 file: the 2.3
// spelling when there is one, and why the file is read as 2.3.
func counterpart24(key string) string {
	h, ok := to23[key]
	switch {
	case ok:
	case strings.HasPrefix(key, "ldap_"), strings.HasPrefix(key, "passdb_ldap_"), strings.HasPrefix(key, "userdb_ldap_"):
		h = "write the LDAP settings in dovecot-ldap.conf.ext (args = PATH)"
	case known24(key) && !hasKey(dovecotRootDefaults, key):
		h = ""
	default:
		return ""
	}
	msg := "it is Dovecot 2.4's, but this configuration is read as 2.3 (its first setting is not dovecot_config_version)"
	if h != "" {
		msg += "; in 2.3 " + h
	}
	return msg
}
