package proxycfg

import (
	"strings"
	"testing"
)

func TestTargetHealthField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		up, target, worker string
		field              string
		wantErr            bool
	}{
		{name: "plain", up: "u1", target: "http://10.0.0.1:8080", worker: "w1"},
		{name: "url with a bar", up: "u1", target: "http://h/a|b", worker: "w1"},
		{name: "no worker", field: "u1|http://h|", wantErr: true},
		{name: "no upstream", field: "|http://h|w", wantErr: true},
		{name: "no target", field: "u1||w", wantErr: true},
		{name: "one bar", field: "u1|w", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.field
			if f == "" {
				f = TargetHealthField(tc.up, tc.target, tc.worker)
			}
			up, target, worker, err := ParseTargetHealthField(f)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseTargetHealthField(%q) = %q %q %q, want an error", f, up, target, worker)
				}
				return
			}
			if err != nil || up != tc.up || target != tc.target || worker != tc.worker {
				t.Fatalf("ParseTargetHealthField(%q) = %q %q %q %v", f, up, target, worker, err)
			}
		})
	}
	if k := (Keys{Prefix: "p:"}).TargetHealth("t1"); k != "p:tollgate:health:t1" {
		t.Fatalf("TargetHealth key %q", k)
	}
}

func TestTargetHealthBeatKeysShareASlot(t *testing.T) {
	t.Parallel()
	k := Keys{Prefix: "p:"}
	a, b := k.TargetHealthBeat("w1"), k.TargetHealthBeat("w2")
	tag := func(key string) string {
		open := strings.IndexByte(key, '{')
		end := strings.IndexByte(key[open+1:], '}')
		return key[open+1 : open+1+end]
	}
	if a != "p:{tollgate:health:beat}:w1" || tag(a) != tag(b) || tag(a) == "" {
		t.Fatalf("beat keys %q and %q, want one hash tag", a, b)
	}
}
