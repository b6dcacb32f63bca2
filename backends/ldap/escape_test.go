package ldap

import (
	"testing"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"
)

func TestEscapeFilter(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"alice@example.com":     "alice@example.com",
		"*":                     `\2A`,
		"*)(uid=*":              `\2A\29\28uid=\2A`,
		`a\b`:                   `a\5Cb`,
		"a\x00b":                `a\00b`,
		"star*(x)@example.com":  `star\2A\28x\29@example.com`,
		"o'brien@example.com":   "o'brien@example.com",
		",+=#; <>\"":            ",+=#; <>\"", // DN specials mean nothing in a filter
		"é":                     `\C3\A9`,
		"\xff\xfe":              `\FF\FE`,
		"tab\there":             `tab\09here`,
		"alice)(|(uid=*":        `alice\29\28|\28uid=\2A`,
		"#lead and trailing  ":  "#lead and trailing  ",
		"\x7f":                  `\7F`,
		"100%":                  "100%",
		"%' OR 1=1 -- ":         "%' OR 1=1 -- ",
		"alice@example.com\\":   `alice@example.com\5C`,
		"alice@example.com\x00": `alice@example.com\00`,
	} {
		if got := EscapeFilter(in); got != want {
			t.Errorf("EscapeFilter(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscapeDN(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		"alice":                "alice",
		"a,b":                  `a\,b`,
		"a+b":                  `a\+b`,
		"a=b":                  `a\=b`,
		`a\b`:                  `a\\b`,
		`"<>;`:                 `\"\<\>\;`,
		"#x":                   `\#x`,
		"x#":                   "x#",
		" x ":                  `\ x\ `,
		"a b":                  "a b",
		" ":                    `\ `,
		"a\x00b":               `a\00b`,
		"*()":                  "*()", // filter specials mean nothing in a DN
		"star*(x)@example.com": "star*(x)@example.com",
		"é":                    `\C3\A9`,
		"alice,ou=people":      `alice\,ou\=people`,
		"\n":                   `\0A`,
	} {
		if got := EscapeDN(in); got != want {
			t.Errorf("EscapeDN(%q) = %q, want %q", in, got, want)
		}
	}
}

// escapeSamples are the values the round-trip tests push through a real
// filter and DN parser.
var escapeSamples = []string{
	"alice", "*", "(", ")", `\`, "\x00", ",", "+", "=", "#", " ", "#lead", " lead", "trail ",
	"a,b+c=d", "star*(x)@example.com", "o'brien@example.com", `"q"`, "<>;", "é", "日本",
	"*)(uid=*", "alice@example.com,ou=people", "x\x00y", "tab\t", "", "##", "  ",
}

// TestEscapeFilterRoundTrip checks with go-ldap's filter compiler that an
// escaped value yields one equality assertion carrying exactly the value.
func TestEscapeFilterRoundTrip(t *testing.T) {
	for _, v := range escapeSamples {
		p, err := goldap.CompileFilter("(cn=" + EscapeFilter(v) + ")")
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if p.Tag != goldap.FilterEqualityMatch || len(p.Children) != 2 {
			t.Errorf("%q: not a single equality filter: tag %d", v, p.Tag)
			continue
		}
		if got := p.Children[1].Data.String(); got != v {
			t.Errorf("%q: assertion value %q", v, got)
		}
	}
}

// TestEscapeDNRoundTrip checks with go-ldap's DN parser that an escaped
// value stays one attribute value of one RDN.
func TestEscapeDNRoundTrip(t *testing.T) {
	for _, v := range escapeSamples {
		if v == "" || !utf8.ValidString(v) {
			continue
		}
		dn, err := goldap.ParseDN("uid=" + EscapeDN(v) + ",ou=people,dc=example,dc=com")
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if len(dn.RDNs) != 4 || len(dn.RDNs[0].Attributes) != 1 {
			t.Errorf("%q: DN structure changed: %v", v, dn)
			continue
		}
		if got := dn.RDNs[0].Attributes[0].Value; got != v {
			t.Errorf("%q: RDN value %q", v, got)
		}
	}
}
