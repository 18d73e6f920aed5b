package publish

import (
	"encoding/json"
	"fmt"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// decodeDataplane overlays a dataplane jsonb column (upstream or API
// settings of issue 3) on the compiled object: its keys are the JSON names
// of the proxycfg fields.
func decodeDataplane(raw []byte, dst any) error {
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("decode dataplane settings: %w", err)
	}
	return nil
}

// pruneJWTPlans drops JWT plan references to plans that no longer exist
// (a plan deleted after the API named it), so that one stale reference
// cannot make the whole snapshot invalid: callers mapped to a deleted plan
// are refused (403) instead.
func pruneJWTPlans(tenants []proxycfg.Tenant) {
	for ti := range tenants {
		t := &tenants[ti]
		plans := make(map[string]bool, len(t.Plans))
		for _, p := range t.Plans {
			plans[p.ID] = true
		}
		for ai := range t.APIs {
			j := t.APIs[ai].JWT
			if j == nil {
				continue
			}
			if j.PlanID != "" && !plans[j.PlanID] {
				j.PlanID = ""
			}
			kept := j.Subjects[:0]
			for _, s := range j.Subjects {
				if plans[s.PlanID] {
					kept = append(kept, s)
				}
			}
			j.Subjects = kept
		}
	}
}
