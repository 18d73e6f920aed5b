package token

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		s, err := New("tg_")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, "tg_") || len(s) != 3+43 || seen[s] {
			t.Fatalf("bad or repeated secret %q", s)
		}
		seen[s] = true
		if p := Prefix(s); len(p) != PrefixLen || !strings.HasPrefix(s, p) {
			t.Fatalf("prefix %q of %q", p, s)
		}
	}
}
