package metrics

// Series identity. API and Upstream make a new value at every build of a
// tenant, over the same series when the labels are the same: compare
// values by Key, not by pointer, to tell whether a change dropped a
// series (only then is Retain, which walks every series, needed).

// Key names the series of a: its tenant and API labels ("", "" for nil).
func (a *APIMetrics) Key() [2]string {
	if a == nil {
		return [2]string{}
	}
	return [2]string{a.tenant, a.api}
}

// Key names the series of u: its tenant and upstream labels ("", "" for
// nil).
func (u *UpstreamMetrics) Key() [2]string {
	if u == nil {
		return [2]string{}
	}
	return [2]string{u.tenant, u.upstream}
}
