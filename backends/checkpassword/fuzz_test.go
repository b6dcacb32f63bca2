package checkpassword

import (
	"strings"
	"testing"
)

// FuzzParseReply feeds checkpassword replies (house rule 2): no panic,
// no empty key, and no more fields than TAB-separated parts.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"user=a\tuserdb_uid=1\t", "\t\t=x\t", "a\x01tb=c\x01", "password={PLAIN}x\tnologin"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := parseReply(s)
		if len(got) > strings.Count(s, "\t")+1 {
			t.Fatalf("%d fields from %q", len(got), s)
		}
		for _, fl := range got {
			if fl.Key == "" {
				t.Fatalf("empty key from %q", s)
			}
		}
	})
}
