package limits_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/services/fault"
	"github.com/tollgate/tollgate/services/limits"
)

func TestFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(*limits.Limits)
		err  string
	}{
		{name: "defaults", env: nil, want: func(*limits.Limits) {}},
		{name: "set", env: map[string]string{"TOLLGATE_LIMIT_APIS": "500", "TOLLGATE_LIMIT_CONFIG_BYTES": " 1_048_576 ",
			"TOLLGATE_LIMIT_MIN_HEALTH_INTERVAL_MS": "0", "TOLLGATE_LIMIT_TARGETS_PER_UPSTREAM": "8"},
			want: func(l *limits.Limits) {
				l.APIs, l.ConfigBytes, l.MinHealthIntervalMS, l.TargetsPerUpstream = 500, 1<<20, 0, 8
			}},
		{name: "not a number", env: map[string]string{"TOLLGATE_LIMIT_KEYS": "lots"}, err: "TOLLGATE_LIMIT_KEYS"},
		{name: "negative", env: map[string]string{"TOLLGATE_LIMIT_ROUTES": "-1"}, err: "TOLLGATE_LIMIT_ROUTES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := limits.FromEnv(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			want := limits.Defaults()
			tc.want(&want)
			if err != nil || got != want {
				t.Fatalf("FromEnv = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}

func TestDefsCoverEveryField(t *testing.T) {
	t.Parallel()
	d := limits.Defaults()
	seen := map[string]bool{}
	for _, def := range limits.Defs() {
		if d.Get(def.Name) != def.Default || def.Default <= 0 || def.Label == "" {
			t.Errorf("limit %s: default %d, field %d, label %q", def.Name, def.Default, d.Get(def.Name), def.Label)
		}
		if seen[def.Env()] {
			t.Errorf("duplicate variable %s", def.Env())
		}
		seen[def.Env()] = true
	}
	// Every field of Limits is described (14 limits).
	if len(seen) != 14 {
		t.Errorf("%d limits described", len(seen))
	}
}

func TestOverrideAndCheck(t *testing.T) {
	t.Parallel()
	var ve *fault.ValidationError
	if err := (limits.Override{"apis": -1, "nope": 3, "keys": 5}).Validate(); !errors.As(err, &ve) || len(ve.Errors) != 2 {
		t.Fatalf("validate = %v", err)
	}
	l := limits.Defaults().With(limits.Override{limits.APIs: 2, limits.MinHealthIntervalMS: 5000})
	if l.APIs != 2 || l.Plans != limits.DefaultPlans {
		t.Fatalf("with override: %+v", l)
	}
	if err := l.Check(limits.APIs, 2, ""); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	var le *fault.LimitError
	if err := l.Check(limits.APIs, 3, "name"); !errors.As(err, &le) || le.Max != 2 || le.Value != 3 || le.Field != "name" ||
		!strings.Contains(le.Message, "at most 2 APIs") {
		t.Errorf("over: %v", err)
	}
	if err := l.Check(limits.MinHealthIntervalMS, 5000, ""); err != nil {
		t.Errorf("at the minimum: %v", err)
	}
	if err := l.Check(limits.MinHealthIntervalMS, 1000, ""); !errors.As(err, &le) || !le.Lower || le.Max != 5000 {
		t.Errorf("below the minimum: %v", err)
	}
	zero := l.With(limits.Override{limits.Domains: 0})
	if err := zero.Check(limits.Domains, 1, "domain"); !errors.As(err, &le) || !strings.Contains(le.Message, "may not have") {
		t.Errorf("zero limit: %v", err)
	}
}
