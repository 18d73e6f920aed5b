package pipeline

import (
	"fmt"
	"slices"
	"sort"

	"github.com/tollgate/tollgate/proxy/cowmap"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/router"
)

// Composer makes runtimes tenant by tenant: given the live runtime and the
// parts of the tenants that changed, it makes the runtime that replaces it,
// sharing every other tenant's part. Its cost is in proportion to the
// changed tenants (the tenant and host maps are versions that share what
// the change leaves alone: cowmap).
//
// It keeps what the runtimes it makes have in common: the endpoint table
// (an index per distinct endpoint that stays put while any tenant uses it,
// so that unchanged tenants' APIs keep theirs) and the claims on host
// names. So it is used by one goroutine, and each Compose takes the
// runtime the previous Compose made.
type Composer struct {
	opts   BuildOptions
	eps    endpointTable
	claims map[string][]claim // by host name, the winner first
	seq    uint64             // orders claims: the first claim of a name keeps it
}

// claim is a tenant's claim on a host name.
type claim struct {
	tenant   string
	platform bool // <slug>.<domain>, which wins over any custom domain
	seq      uint64
}

// NewComposer makes a Composer for runtimes wired to opts (Previous is not
// used).
func NewComposer(opts BuildOptions) *Composer {
	return &Composer{opts: opts, claims: map[string][]claim{}}
}

// BuildTenant is BuildTenant with the composer's options.
func (c *Composer) BuildTenant(tn *proxycfg.Tenant, info ShardInfo, prev *Tenant) (*Tenant, error) {
	return BuildTenant(tn, info, prev, c.opts)
}

// Change replaces a tenant's part: Part nil removes the tenant.
type Change struct {
	ID   string
	Part *Tenant
}

// Update is what changes from one runtime to the next.
type Update struct {
	// Generation is the new runtime's Generation.
	Generation int64
	// DigestVersion is the installation's digest key version.
	DigestVersion int
	// Changes are applied in order: where two tenants claim one host
	// name, the one that claimed it first keeps it (platform host names
	// before custom domains).
	Changes []Change
}

// Compose makes the runtime that replaces cur (nil for the first) with u
// applied. It cannot fail: parts are built (and may fail) before. A part
// goes into one runtime only; cur must be the last runtime the composer
// made.
func (c *Composer) Compose(cur *Runtime, u Update) *Runtime {
	next := &Runtime{Generation: u.Generation, DigestVersion: u.DigestVersion}
	var curTenants cowmap.Map[*Tenant]
	var curHosts router.Hosts[*Tenant]
	if cur != nil {
		next.CompiledAt, next.bodyLimits, next.endpoints = cur.CompiledAt, cur.bodyLimits, cur.endpoints
		curTenants, curHosts = cur.tenants, cur.hosts
	}
	// The next versions share every part these changes do not touch.
	tenants, hosts := curTenants.Edit(), curHosts.Edit()
	c.eps.changed = false
	affected := map[string]bool{}
	var released []*Tenant
	for _, ch := range u.Changes {
		old, _ := tenants.Get(ch.ID)
		if old == ch.Part {
			continue
		}
		oldHosts := c.hostsOf(old)
		newHosts := c.hostsOf(ch.Part)
		for h := range oldHosts {
			affected[h] = true
			if _, keep := newHosts[h]; !keep {
				c.unclaim(h, ch.ID)
			}
		}
		for h, platform := range newHosts {
			affected[h] = true
			c.claim(h, ch.ID, platform)
		}
		if old != nil {
			released = append(released, old)
			if old.bodyLimits {
				next.bodyLimits--
			}
		}
		if ch.Part == nil {
			tenants.Delete(ch.ID)
			continue
		}
		p := ch.Part
		if p.composed {
			panic(fmt.Sprintf("pipeline: tenant %q part composed twice", p.ID))
		}
		p.composed = true
		// The part's endpoints get their global indices before the old
		// part's are released, so that an endpoint both use keeps its
		// index (and the engine its client) without a new table.
		p.global = make([]int, len(p.endpoints))
		for i, e := range p.endpoints {
			p.global[i] = c.eps.acquire(e)
		}
		for _, api := range p.apiList {
			for i, local := range api.endpoints {
				api.endpoints[i] = p.global[local]
			}
		}
		tenants.Set(ch.ID, p)
		if p.bodyLimits {
			next.bodyLimits++
		}
		if p.CompiledAt.After(next.CompiledAt) {
			next.CompiledAt = p.CompiledAt
		}
	}
	for _, old := range released {
		for _, g := range old.global {
			c.eps.release(g)
		}
	}
	for h := range affected {
		cl := c.claims[h]
		if len(cl) == 0 {
			hosts.Delete(h)
			continue
		}
		holder, _ := tenants.Get(cl[0].tenant)
		hosts.Set(h, holder)
	}
	next.tenants, next.hosts = tenants.Map(), hosts.Hosts()
	if c.opts.Logger != nil {
		for _, ch := range u.Changes {
			for h := range c.hostsOf(ch.Part) {
				if cl := c.claims[h]; len(cl) > 0 && cl[0].tenant != ch.ID {
					c.opts.Logger.Warn("tenant host name not served: another tenant holds it", "tenant", ch.Part.Slug,
						"host", h, "holder", cl[0].tenant)
				}
			}
		}
	}
	if c.eps.changed || next.endpoints == nil {
		next.endpoints = c.eps.snapshot()
	}
	return next
}

// hostsOf lists the host names a part claims, each with whether it is the
// platform's (<slug>.<domain>). Names too long to serve are left out (and
// logged).
func (c *Composer) hostsOf(p *Tenant) map[string]bool {
	if p == nil {
		return nil
	}
	out := make(map[string]bool, 1+len(p.Domains))
	if h, err := router.PlatformHost(p.Slug, c.opts.Domain); err == nil {
		out[h] = true
	} else if c.opts.Logger != nil {
		c.opts.Logger.Warn("tenant host name not served", "tenant", p.Slug, "err", err)
	}
	for _, d := range p.Domains {
		h, err := router.HostName(d)
		if err != nil {
			if c.opts.Logger != nil {
				c.opts.Logger.Warn("tenant host name not served", "tenant", p.Slug, "err", err)
			}
			continue
		}
		if _, dup := out[h]; !dup {
			out[h] = false
		}
	}
	return out
}

// claim records tenant's claim on h (kept as it was if it has one).
func (c *Composer) claim(h, tenant string, platform bool) {
	cl := c.claims[h]
	for i := range cl {
		if cl[i].tenant == tenant {
			if cl[i].platform == platform {
				return
			}
			cl = slices.Delete(cl, i, i+1)
			break
		}
	}
	c.seq++
	cl = append(cl, claim{tenant: tenant, platform: platform, seq: c.seq})
	sort.SliceStable(cl, func(i, j int) bool {
		if cl[i].platform != cl[j].platform {
			return cl[i].platform
		}
		return cl[i].seq < cl[j].seq
	})
	c.claims[h] = cl
}

// unclaim drops tenant's claim on h.
func (c *Composer) unclaim(h, tenant string) {
	cl := c.claims[h]
	for i := range cl {
		if cl[i].tenant == tenant {
			cl = slices.Delete(cl, i, i+1)
			break
		}
	}
	if len(cl) == 0 {
		delete(c.claims, h)
		return
	}
	c.claims[h] = cl
}

// endpointTable gives each distinct Endpoint an index that stays its own
// while any composed part uses it; indices freed are reused.
type endpointTable struct {
	list    []Endpoint
	refs    []int
	index   map[Endpoint]int
	free    []int
	changed bool // list changed since the flag was cleared
}

func (t *endpointTable) acquire(e Endpoint) int {
	if i, ok := t.index[e]; ok {
		t.refs[i]++
		return i
	}
	if t.index == nil {
		t.index = map[Endpoint]int{}
	}
	var i int
	if n := len(t.free); n > 0 {
		i, t.free = t.free[n-1], t.free[:n-1]
		t.list[i], t.refs[i] = e, 1
	} else {
		i = len(t.list)
		t.list = append(t.list, e)
		t.refs = append(t.refs, 1)
	}
	t.index[e] = i
	t.changed = true
	return i
}

func (t *endpointTable) release(i int) {
	if t.refs[i]--; t.refs[i] > 0 {
		return
	}
	delete(t.index, t.list[i])
	t.list[i] = Endpoint{}
	t.free = append(t.free, i)
	t.changed = true
}

// snapshot is the list as a runtime keeps it (a copy: the table changes).
func (t *endpointTable) snapshot() []Endpoint {
	out := make([]Endpoint, len(t.list))
	copy(out, t.list)
	return out
}

// Build compiles a validated snapshot of the whole platform into a new
// runtime, with a composer of its own (tests, tools and fuzzing; workers
// compose shard by shard). It starts nothing and changes no live state: a
// failed build leaves nothing behind. With opts.Previous, each tenant's
// balancer counters carry over from its part there.
func Build(snap *proxycfg.Snapshot, opts BuildOptions) (*Runtime, error) {
	if err := snap.Validate(); err != nil {
		return nil, fmt.Errorf("invalid snapshot: %w", err)
	}
	c := NewComposer(opts)
	u := Update{Generation: snap.Generation, DigestVersion: snap.DigestVersion}
	for i := range snap.Tenants {
		tn := &snap.Tenants[i]
		part, err := c.BuildTenant(tn, ShardInfo{Generation: snap.Generation, CompiledAt: snap.CompiledAt,
			Capability: tn.Capability()}, opts.Previous.Tenant(tn.ID))
		if err != nil {
			return nil, err
		}
		u.Changes = append(u.Changes, Change{ID: tn.ID, Part: part})
	}
	rt := c.Compose(nil, u)
	if rt.CompiledAt.IsZero() || snap.CompiledAt.After(rt.CompiledAt) {
		rt.CompiledAt = snap.CompiledAt
	}
	return rt, nil
}
