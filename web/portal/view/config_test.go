package view

import (
	"bytes"
	"context"
	"html"
	"regexp"
	"strings"
	"testing"
)

// TestConfigNotice renders the config banner and the quiet line for each
// state of a tenant's config: quiet when all is well, loud when a change
// was refused or workers are too old.
func TestConfigNotice(t *testing.T) {
	t.Parallel()
	tags := regexp.MustCompile(`<[^>]*>`)
	tests := []struct {
		name   string
		n      *ConfigNotice
		banner []string // in the banner, in order ("" none at all)
		line   string   // the quiet line ("" none)
	}{
		{name: "no status", n: nil},
		{name: "nothing yet", n: &ConfigNotice{}},
		{name: "first change on its way", n: &ConfigNotice{Pending: 1}, line: "Your config is on its way to the gateway."},
		{name: "live", n: &ConfigNotice{Live: 7, Workers: 3}, line: "Config generation 7 is live on the gateway."},
		{name: "live and a change on its way", n: &ConfigNotice{Live: 7, Pending: 8},
			line: "Config generation 7 is live on the gateway; generation 8 is on its way."},
		{name: "refused", n: &ConfigNotice{Live: 7, Refused: 9, Reason: `api "orders": base path "/x" taken.`},
			banner: []string{"Your latest change was not applied.", `Config generation 9 was refused: api "orders": base path "/x" taken.`,
				"The gateway keeps serving generation 7, your last good config."}},
		{name: "refused before any config", n: &ConfigNotice{Refused: 1, Reason: "too big"},
			banner: []string{"Config generation 1 was refused: too big.", "serves none of your APIs"}},
		{name: "one worker too old", n: &ConfigNotice{Live: 7, Workers: 3, TooOld: 1},
			banner: []string{"1 of 3 gateway workers is too old for your config (generation 7)", "answer 503"},
			line:   "Config generation 7 is live on the gateway."},
		{name: "workers too old", n: &ConfigNotice{Live: 7, Workers: 3, TooOld: 2},
			banner: []string{"2 of 3 gateway workers are too old"}, line: "Config generation 7 is live on the gateway."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var banner, line bytes.Buffer
			if err := ConfigBanner(tc.n).Render(context.Background(), &banner); err != nil {
				t.Fatal(err)
			}
			if err := ConfigLine(tc.n).Render(context.Background(), &line); err != nil {
				t.Fatal(err)
			}
			text := func(b bytes.Buffer) string {
				return strings.Join(strings.Fields(html.UnescapeString(tags.ReplaceAllString(b.String(), " "))), " ")
			}
			got := text(banner)
			if len(tc.banner) == 0 && got != "" {
				t.Errorf("banner %q, want none", got)
			}
			rest := got
			for _, w := range tc.banner {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("banner %q lacks %q (in order)", got, w)
				}
				rest = rest[i+len(w):]
			}
			if got := text(line); got != tc.line {
				t.Errorf("line %q, want %q", got, tc.line)
			}
		})
	}
}
