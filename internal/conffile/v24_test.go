package conffile

import "testing"

// TestVersion24Lexical pins the lexical changes of Dovecot 2.4's
// config-parser.c (config_parse_line) that Version24 switches on, and
// that Version23 keeps reading the 2.3 way.
func TestVersion24Lexical(t *testing.T) {
	tests := []struct {
		name, in string
		v23, v24 string
		errs23   int
		errs24   int
	}{
		// 2.4 skips i_isspace() blanks; 2.3 only spaces and tabs, so a
		// vertical tab or form feed is part of the key or value there.
		{name: "isspace blanks", in: "a\v=\fb\f\n", v23: "a\v=\"\\fb\\f\"\n", v24: "a=\"b\"\n"},
		// 2.4 reads a quoted key up to its closing quote, backslashes
		// skipping a byte and staying in the key.
		{name: "quoted key", in: "\"my key\\\"s\" = v\n", v23: "", errs23: 1, v24: "my key\\\"s=\"v\"\n"},
		{name: "quoted key in section", in: "fields {\n  \"a b\" = %{user | lower}\n}\n",
			v23: "fields {\n}\n", errs23: 1, v24: "fields {\n a b=\"%{user | lower}\"\n}\n"},
		// `group @name label {` is a group section in 2.4; in 2.3 it is
		// a section header with too many words.
		{name: "group", in: "group @mail big {\n  x = 1\n}\n", v23: "", errs23: 1, v24: "@mail \"big\" {\n x=\"1\"\n}\n"},
		{name: "group without label", in: "group @mail {\n}\n", v23: "group \"@mail\" {\n}\n", v24: "", errs24: 1},
		{name: "section called group", in: "group {\n}\n", v23: "group {\n}\n", v24: "group {\n}\n"},
		// Named filters, 2.4's way of writing passdb/userdb and SQL
		// hosts, are ordinary labelled sections.
		{name: "named filters", in: "dovecot_config_version = 2.4.0\npassdb passwd-file {\n  passwd_file_path = /etc/x\n}\nsql_driver = mysql\nmysql 127.0.0.1 {\n}\n",
			v23: "dovecot_config_version=\"2.4.0\"\npassdb \"passwd-file\" {\n passwd_file_path=\"/etc/x\"\n}\nsql_driver=\"mysql\"\nmysql \"127.0.0.1\" {\n}\n",
			v24: "dovecot_config_version=\"2.4.0\"\npassdb \"passwd-file\" {\n passwd_file_path=\"/etc/x\"\n}\nsql_driver=\"mysql\"\nmysql \"127.0.0.1\" {\n}\n"},
		// $SET:name is a variable value either way; the caller expands it.
		{name: "set variable", in: "a = $SET:b x\n", v23: "a=$\"$SET:b x\"\n", v24: "a=$\"$SET:b x\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r23 := Read("t.conf", []byte(tt.in), nil)
			r24 := Read("t.conf", []byte(tt.in), &Options{Version: Version24})
			if got := r23.Root.String(); got != tt.v23 || len(r23.Errors) != tt.errs23 {
				t.Errorf("2.3: %q %v, want %q with %d errors", got, r23.Errors, tt.v23, tt.errs23)
			}
			if got := r24.Root.String(); got != tt.v24 || len(r24.Errors) != tt.errs24 {
				t.Errorf("2.4: %q %v, want %q with %d errors", got, r24.Errors, tt.v24, tt.errs24)
			}
		})
	}
	// The tree keeps what 2.4 needs to know about quoting.
	r := Read("t.conf", []byte("\"k\" = \"\"\nu =\ngroup @g x {\n}\n"), &Options{Version: Version24})
	c := r.Root.Children
	if len(c) != 3 || !c[0].KeyQuoted || !c[0].Quoted || c[1].Quoted || !c[2].Group || c[2].Key != "@g" || c[2].Label != "x" {
		t.Errorf("flags: %+v %+v %+v", c[0], c[1], c[2])
	}
}

// TestDetectVersion: a file is Dovecot 2.4's when its first setting is
// dovecot_config_version; comments and blank lines may come first.
func TestDetectVersion(t *testing.T) {
	tests := []struct {
		in    string
		value string
		line  int
		found bool
	}{
		{"dovecot_config_version = 2.4.1\n", "2.4.1", 1, true},
		{"# comment\n\n  \t# more\ndovecot_config_version=2.4.0 # why\nx = y\n", "2.4.0", 4, true},
		{"dovecot_config_version = \"2.4.1\"\n", "2.4.1", 1, true},
		{"\v\fdovecot_config_version\t=\t2.4.1\r\n", "2.4.1", 1, true},
		{"auth_verbose = yes\ndovecot_config_version = 2.4.1\n", "", 1, false},
		{"!include x.conf\ndovecot_config_version = 2.4.1\n", "", 1, false},
		{"dovecot_config_version_x = 1\n", "", 1, false},
		{"# only comments\n", "", 0, false},
		{"", "", 0, false},
	}
	for _, tt := range tests {
		v, line, found := DetectVersion([]byte(tt.in))
		if v != tt.value || line != tt.line || found != tt.found {
			t.Errorf("%q: %q %d %v, want %q %d %v", tt.in, v, line, found, tt.value, tt.line, tt.found)
		}
	}
}
