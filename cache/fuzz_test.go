package cache

import (
	"regexp"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/tabescape"
)

// keyRE is the flush rule of docs/protocol.md §5.9 written independently: the
// "P<n>[+master]\t" prefix, then the values.
var keyRE = regexp.MustCompile(`(?s)^[PU][0-9]*(?:\+[^\t]*)?\t(.*)$`)

// FuzzFlushRule checks keyHasUser (the CACHE-FLUSH user comes from the
// master socket) against the rule restated: the first TAB-separated value
// after the prefix is the tab-escaped user. It also feeds SecretInKey.
func FuzzFlushRule(f *testing.F) {
	f.Add("P1\talice@example.com\timap", "alice@example.com")
	f.Add("P1\talice", "alice@example.com")
	f.Add("U12+master\x01tx\tbob", "bob")
	f.Add("P\t", "")
	f.Add("P1+\t%w\t%{if;%Lw", "a\tb")
	f.Fuzz(func(t *testing.T, key, user string) {
		esc := tabescape.Escape(user)
		got := keyHasUser(key, []string{esc})
		want := false
		if m := keyRE.FindStringSubmatch(key); m != nil {
			first, _, _ := strings.Cut(m[1], "\t")
			want = first == esc
		}
		if got != want {
			t.Errorf("keyHasUser(%q, %q) = %v, want %v", key, user, got, want)
		}
		SecretInKey(key)
	})
}
