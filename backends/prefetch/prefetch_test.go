package prefetch

import (
	"context"
	"errors"
	"testing"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
)

// TestLookupUser: the prefetched fields are the answer; without any, "not
// found" when another userdb follows and an internal failure when prefetch
// is the only userdb (as Dovecot 2.3 and 2.4 answer).
func TestLookupUser(t *testing.T) {
	ctx := context.Background()
	var f fields.Fields
	f.Set("home", "/h")
	for _, d := range []DB{{}, {Only: true}} {
		ans, err := d.LookupUser(ctx, &backends.Request{User: "u", Prefetch: f})
		if err != nil || ans.Outcome != backends.Found || ans.Fields.String() != "home=/h" {
			t.Errorf("%+v with fields: %v %v", d, ans, err)
		}
	}
	if ans, err := (DB{}).LookupUser(ctx, &backends.Request{User: "u"}); err != nil || ans.Outcome != backends.Unknown {
		t.Errorf("without fields: %v %v", ans, err)
	}
	if _, err := (DB{Only: true}).LookupUser(ctx, &backends.Request{User: "u"}); !errors.Is(err, ErrOnlyPrefetch) {
		t.Errorf("only prefetch, without fields: %v", err)
	}
}
