package config

import (
	"strings"
	"testing"

	"github.com/authd-project/authd/schemes"
)

func TestHashBudget(t *testing.T) {
	cfg, err := LoadBytes("t.conf", []byte(minimal+"hash_budget {\n  bcrypt_cost = 12\n  argon2_memory = 64M\n  memory = 1G\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := schemes.DefaultLimits()
	want.BcryptMaxCost, want.Argon2MaxMemoryKiB, want.MemoryBudgetKiB = 12, 64<<10, 1<<20
	if cfg.HashBudget != want {
		t.Errorf("HashBudget %+v, want %+v", cfg.HashBudget, want)
	}
	for _, bad := range []string{"bcrypt_cost = 0", "bcrypt_cost = -1", "scrypt_n = lots", "argon2_memory = 1X", "bcrypt = 12"} {
		_, err := LoadBytes("t.conf", []byte(minimal+"hash_budget {\n  "+bad+"\n}\n"))
		if err == nil || !strings.Contains(err.Error(), "t.conf:") {
			t.Errorf("%q: %v, want an error with file:line", bad, err)
		}
	}
}
