package schemes

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// vector is one entry of testdata/vectors.json (docs/schemes.md §8).
type vector struct {
	Scheme        string          `json:"scheme"`
	User          string          `json:"user"`
	Password      string          `json:"password"`
	Stored        string          `json:"stored"`
	DefaultScheme *string         `json:"default_scheme"`
	Expect        json.RawMessage `json:"expect"`
	Source        string          `json:"source"`
	Note          string          `json:"note"`
	DovecotError  string          `json:"dovecot_error"`
	ExpectSQLLDAP json.RawMessage `json:"expect_sql_ldap"`
	Legacy2319    string          `json:"dovecot_2_3_19_result"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile("../testdata/vectors.json")
	if err != nil {
		t.Fatalf("reading the repo copy of the vectors: %v", err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 1000 {
		t.Fatalf("only %d vectors", len(vs))
	}
	return vs
}

// verdictOf maps Verify's result to the vectors' vocabulary.
func verdictOf(ok bool, err error) string {
	switch {
	case err != nil:
		return "error"
	case ok:
		return "true"
	}
	return "false"
}

func rawVerdict(m json.RawMessage) string {
	var b bool
	if json.Unmarshal(m, &b) == nil {
		return fmt.Sprint(b)
	}
	var s string
	_ = json.Unmarshal(m, &s)
	return s
}

// unsupported lists the crypt(3) formats libxcrypt verifies but authd
// does not implement: authd must answer ErrUnsupported ("could not tell"),
// never a verdict. Keyed by a prefix of the stored value after {CRYPT}.
var unsupported = map[string]string{
	"$sm3$":  "SM3 crypt is not implemented",
	"$sm3y$": "SM3 yescrypt is not implemented",
}

func unsupportedReason(data string) (string, bool) {
	for p, why := range unsupported {
		if strings.HasPrefix(data, p) {
			return why, true
		}
	}
	return "", false
}

func TestVectors(t *testing.T) {
	vs := loadVectors(t)
	counts := map[string]int{}
	for i, v := range vs {
		name := fmt.Sprintf("%04d_%s", i, v.Scheme)
		t.Run(name, func(t *testing.T) {
			want := rawVerdict(v.Expect)
			if v.Source == "computed-legacy" {
				// LANMAN/NTLM/RPA were removed in 2.3.14; 2.3.19 (and authd)
				// answer "Unknown scheme" (§1).
				want = v.Legacy2319
			}
			scheme, data := Split(v.Stored)
			if scheme == "" && v.DefaultScheme != nil {
				scheme = *v.DefaultScheme
			}
			ok, err := Verify(scheme, data, []byte(v.Password), v.User)
			got := verdictOf(ok, err)
			if why, skip := unsupportedReason(data); skip {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("stored %q: want ErrUnsupported (%s), got %s %v", v.Stored, why, got, err)
				}
				counts["unsupported"]++
				return
			}
			if got != want {
				t.Fatalf("scheme %q stored %q note %q: got %s (%v), want %s (dovecot: %s)",
					scheme, v.Stored, v.Note, got, err, want, v.DovecotError)
			}
			if want == "error" && v.Source == "computed-legacy" && !errors.Is(err, ErrUnknownScheme) {
				t.Fatalf("legacy scheme: want ErrUnknownScheme, got %v", err)
			}
			counts[want]++
			if len(v.ExpectSQLLDAP) > 0 {
				wantSQL := rawVerdict(v.ExpectSQLLDAP)
				scheme, data := SplitStrict(v.Stored)
				if scheme == "" && v.DefaultScheme != nil {
					scheme = *v.DefaultScheme
				}
				ok, err := Verify(scheme, data, []byte(v.Password), v.User)
				if got := verdictOf(ok, err); got != wantSQL {
					t.Fatalf("SQL/LDAP rule: got %s (%v), want %s", got, err, wantSQL)
				}
				counts["sql"]++
			}
		})
	}
	t.Logf("vector verdicts checked: %v", counts)
}
