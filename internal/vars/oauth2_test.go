package vars

import "testing"

// The oauth2 passdb's pass_attrs: %{oauth2:NAME[:DEFAULT]} and %$ read
// the token's fields; elsewhere "oauth2" stays an unknown variable.
func TestParseOAuth2Fields(t *testing.T) {
	fts, err := ParseOAuth2Fields("host=%{oauth2:mailhost} sub=%$ d=%{oauth2:nope:dflt} u=%Lu q=%U{oauth2:mailhost}")
	if err != nil {
		t.Fatal(err)
	}
	c := &Context{User: "Al@Ex", OAuth2: MapFields{"mailhost": "imap1", "sub": "s1"}}
	want := map[string]string{"host": "imap1", "sub": "s1", "d": "dflt", "u": "al@ex", "q": "IMAP1"}
	for _, f := range fts {
		if got, err := f.Value.ExpandChecked(c, nil); err != nil || got != want[f.Key] {
			t.Errorf("%s = %q (%v), want %q", f.Key, got, err, want[f.Key])
		}
		if (f.Key == "u") == f.Value.Uses("oauth2") {
			t.Errorf("%s: Uses(oauth2) = %v", f.Key, f.Value.Uses("oauth2"))
		}
	}
	plain, _ := ParseFields("x=%{oauth2:mailhost}")
	if got, err := plain[0].Value.ExpandChecked(c, nil); err == nil {
		t.Errorf("ParseFields knows oauth2: %q", got)
	}
}
