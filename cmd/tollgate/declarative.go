package main

// The declarative format of a tenant's configuration (DESIGN.md
// "Declarative config"): what `tollgate apply` reads and `tollgate export`
// writes. It covers the tenant's gateway configuration: upstreams, APIs
// (with their OpenAPI documents inline), plans and the developer portal's
// settings. It leaves out what is not configuration or holds secrets:
// consumers, keys, admin tokens, developers, apps and subscriptions, the
// portal's OpenID Connect provider, the Stripe connection, usage and the
// operator's limits; apply never touches those.
//
// Upstreams and plans are matched by name, APIs by slug; an API names its
// upstream by name, a plan its APIs by slug, a JWT API its plans by name.
// A field left out means its default (the server's), which export leaves
// out in turn, so that export and apply round-trip.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// tenantConfig is one file of the format, or several merged.
type tenantConfig struct {
	Upstreams []*upstreamSpec `yaml:"upstreams,omitempty" json:"upstreams,omitempty"`
	APIs      []*apiSpec      `yaml:"apis,omitempty" json:"apis,omitempty"`
	Plans     []*planSpec     `yaml:"plans,omitempty" json:"plans,omitempty"`
	// Portal nil leaves the developer portal's settings as they are.
	Portal *portalSpec `yaml:"portal,omitempty" json:"portal,omitempty"`
}

// upstreamSpec is an upstream, matched by name.
type upstreamSpec struct {
	Name string `yaml:"name" json:"name"`
	// Algorithm: round_robin (default), weighted, least_conn,
	// consistent_hash or random.
	Algorithm string       `yaml:"algorithm,omitempty" json:"algorithm,omitempty"`
	Targets   []targetSpec `yaml:"targets" json:"targets"`
	// HealthCheck nil: no active health check.
	HealthCheck    *healthCheckSpec    `yaml:"health_check,omitempty" json:"health_check,omitempty"`
	HashOn         *hashOnSpec         `yaml:"hash_on,omitempty" json:"hash_on,omitempty"`
	Outlier        *outlierSpec        `yaml:"outlier,omitempty" json:"outlier,omitempty"`
	Retry          *retrySpec          `yaml:"retry,omitempty" json:"retry,omitempty"`
	CircuitBreaker *circuitBreakerSpec `yaml:"circuit_breaker,omitempty" json:"circuit_breaker,omitempty"`

	src source
}

type targetSpec struct {
	URL string `yaml:"url" json:"url"`
	// Weight nil: 1.
	Weight *int `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// healthCheckSpec: zero fields take the server's defaults (path /, every
// 10 s, timeout 2 s or the interval, thresholds 2 and 3, any 2xx or 3xx).
type healthCheckSpec struct {
	Path               string `yaml:"path,omitempty" json:"path,omitempty"`
	IntervalMS         int    `yaml:"interval_ms,omitempty" json:"interval_ms,omitempty"`
	TimeoutMS          int    `yaml:"timeout_ms,omitempty" json:"timeout_ms,omitempty"`
	HealthyThreshold   int    `yaml:"healthy_threshold,omitempty" json:"healthy_threshold,omitempty"`
	UnhealthyThreshold int    `yaml:"unhealthy_threshold,omitempty" json:"unhealthy_threshold,omitempty"`
	ExpectedStatus     int    `yaml:"expected_status,omitempty" json:"expected_status,omitempty"`
}

type hashOnSpec struct {
	Source      string  `yaml:"source" json:"source"`
	Name        string  `yaml:"name,omitempty" json:"name,omitempty"`
	BoundedLoad float64 `yaml:"bounded_load,omitempty" json:"bounded_load,omitempty"`
}

type outlierSpec struct {
	Consecutive5xx     int `yaml:"consecutive_5xx,omitempty" json:"consecutive_5xx,omitempty"`
	ConsecutiveErrors  int `yaml:"consecutive_errors,omitempty" json:"consecutive_errors,omitempty"`
	BaseEjectionMS     int `yaml:"base_ejection_ms,omitempty" json:"base_ejection_ms,omitempty"`
	MaxEjectionMS      int `yaml:"max_ejection_ms,omitempty" json:"max_ejection_ms,omitempty"`
	MaxEjectionPercent int `yaml:"max_ejection_percent,omitempty" json:"max_ejection_percent,omitempty"`
}

type retrySpec struct {
	Attempts      int `yaml:"attempts,omitempty" json:"attempts,omitempty"`
	BudgetPercent int `yaml:"budget_percent,omitempty" json:"budget_percent,omitempty"`
	MinPerSecond  int `yaml:"min_per_second,omitempty" json:"min_per_second,omitempty"`
}

type circuitBreakerSpec struct {
	MaxRequests int `yaml:"max_requests,omitempty" json:"max_requests,omitempty"`
}

// apiSpec is an API, matched by slug.
type apiSpec struct {
	Name     string `yaml:"name" json:"name"`
	Slug     string `yaml:"slug" json:"slug"`
	BasePath string `yaml:"base_path" json:"base_path"`
	// Upstream names an upstream (of the file or the tenant).
	Upstream string `yaml:"upstream" json:"upstream"`
	// Auth: key (default), jwt or none.
	Auth string `yaml:"auth,omitempty" json:"auth,omitempty"`
	// StripBasePath nil: true.
	StripBasePath    *bool          `yaml:"strip_base_path,omitempty" json:"strip_base_path,omitempty"`
	TimeoutMS        int            `yaml:"timeout_ms,omitempty" json:"timeout_ms,omitempty"`
	RateLimit        *rateLimitSpec `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	Published        bool           `yaml:"published,omitempty" json:"published,omitempty"`
	JWT              *jwtSpec       `yaml:"jwt,omitempty" json:"jwt,omitempty"`
	MaxBodyBytes     int64          `yaml:"max_body_bytes,omitempty" json:"max_body_bytes,omitempty"`
	Host             string         `yaml:"host,omitempty" json:"host,omitempty"`
	ConnectTimeoutMS int            `yaml:"connect_timeout_ms,omitempty" json:"connect_timeout_ms,omitempty"`
	ReadTimeoutMS    int            `yaml:"read_timeout_ms,omitempty" json:"read_timeout_ms,omitempty"`
	// OpenAPI is the API's OpenAPI 3 document, inline (a mapping, or a
	// string holding YAML or JSON); its operations become the API's
	// routes. nil leaves the API's document, if any, as it is: /v1 has no
	// way to drop one.
	OpenAPI *openAPIDoc `yaml:"openapi,omitempty" json:"openapi,omitempty"`

	src source
}

type rateLimitSpec struct {
	Requests   int64 `yaml:"requests,omitempty" json:"requests,omitempty"`
	PerSeconds int64 `yaml:"per_seconds,omitempty" json:"per_seconds,omitempty"`
	Burst      int64 `yaml:"burst,omitempty" json:"burst,omitempty"`
	// Scope (plans only): key (default) or consumer.
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
}

type jwtSpec struct {
	Issuer    string   `yaml:"issuer" json:"issuer"`
	Audiences []string `yaml:"audiences,omitempty" json:"audiences,omitempty"`
	// Claim "": sub. Algorithms empty: RS256.
	Claim      string   `yaml:"claim,omitempty" json:"claim,omitempty"`
	Algorithms []string `yaml:"algorithms,omitempty" json:"algorithms,omitempty"`
	// Plan names the plan of callers not listed in subjects.
	Plan        string            `yaml:"plan,omitempty" json:"plan,omitempty"`
	Subjects    []jwtSubjectSpec  `yaml:"subjects,omitempty" json:"subjects,omitempty"`
	Scopes      []string          `yaml:"scopes,omitempty" json:"scopes,omitempty"`
	RouteScopes []routeScopesSpec `yaml:"route_scopes,omitempty" json:"route_scopes,omitempty"`
}

// jwtSubjectSpec maps a claim value to a consumer (by id: consumers are
// not part of the format) and a plan (by name).
type jwtSubjectSpec struct {
	Value      string `yaml:"value" json:"value"`
	ConsumerID string `yaml:"consumer_id,omitempty" json:"consumer_id,omitempty"`
	Plan       string `yaml:"plan,omitempty" json:"plan,omitempty"`
}

type routeScopesSpec struct {
	PathPrefix string   `yaml:"path_prefix" json:"path_prefix"`
	Methods    []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	Scopes     []string `yaml:"scopes" json:"scopes"`
}

// planSpec is a plan, matched by name.
type planSpec struct {
	Name      string         `yaml:"name" json:"name"`
	RateLimit *rateLimitSpec `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	Quota     *quotaSpec     `yaml:"quota,omitempty" json:"quota,omitempty"`
	// APIs name the plan's APIs by slug.
	APIs []string `yaml:"apis,omitempty" json:"apis,omitempty"`
	// Price nil: free.
	Price            *priceSpec `yaml:"price,omitempty" json:"price,omitempty"`
	Concurrency      int64      `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
	Public           bool       `yaml:"public,omitempty" json:"public,omitempty"`
	ApprovalRequired bool       `yaml:"approval_required,omitempty" json:"approval_required,omitempty"`

	src source
}

type quotaSpec struct {
	Requests int64 `yaml:"requests,omitempty" json:"requests,omitempty"`
	// Period: month (default) or day.
	Period string `yaml:"period,omitempty" json:"period,omitempty"`
}

type priceSpec struct {
	Amount   int64  `yaml:"amount,omitempty" json:"amount,omitempty"`
	Currency string `yaml:"currency" json:"currency"`
	// Interval: month (default), day, week or year.
	Interval          string `yaml:"interval,omitempty" json:"interval,omitempty"`
	PerRequestDecimal string `yaml:"per_request_decimal,omitempty" json:"per_request_decimal,omitempty"`
	IncludedRequests  int64  `yaml:"included_requests,omitempty" json:"included_requests,omitempty"`
}

// portalSpec is the developer portal's settings (not its identity
// provider, which holds a secret).
type portalSpec struct {
	Enabled bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Signup: open (default), approval or invite.
	Signup              string   `yaml:"signup,omitempty" json:"signup,omitempty"`
	DisplayName         string   `yaml:"display_name,omitempty" json:"display_name,omitempty"`
	AccentColor         string   `yaml:"accent_color,omitempty" json:"accent_color,omitempty"`
	LogoURL             string   `yaml:"logo_url,omitempty" json:"logo_url,omitempty"`
	SupportEmail        string   `yaml:"support_email,omitempty" json:"support_email,omitempty"`
	AllowedEmailDomains []string `yaml:"allowed_email_domains,omitempty" json:"allowed_email_domains,omitempty"`

	src source
}

// openAPIDoc is an OpenAPI document inline: read as the text of the file's
// node (YAML or JSON), written from its JSON value.
type openAPIDoc struct {
	text  []byte
	value any
}

func (d *openAPIDoc) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		d.text = []byte(n.Value)
		return nil
	}
	text, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	d.text = text
	return nil
}

// MarshalYAML writes the document as a mapping, its top-level keys in the
// order OpenAPI documents are read (the rest sorted).
func (d openAPIDoc) MarshalYAML() (any, error) {
	m, ok := d.value.(map[string]any)
	if !ok {
		return d.value, nil
	}
	order := map[string]int{"openapi": 1, "info": 2, "servers": 3, "tags": 4, "security": 5, "paths": 6, "components": 7}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		oi, oj := order[keys[i]], order[keys[j]]
		if oi == 0 {
			oi = 100
		}
		if oj == 0 {
			oj = 100
		}
		if oi != oj {
			return oi < oj
		}
		return keys[i] < keys[j]
	})
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range keys {
		var kn, vn yaml.Node
		if err := kn.Encode(k); err != nil {
			return nil, err
		}
		if err := vn.Encode(m[k]); err != nil {
			return nil, err
		}
		out.Content = append(out.Content, &kn, &vn)
	}
	return out, nil
}

func (d openAPIDoc) MarshalJSON() ([]byte, error) { return json.Marshal(d.value) }

// source is where an object of a file is, to name it in errors.
type source struct {
	file   string
	prefix string         // the object's path in its file: apis[2]
	lines  map[string]int // path in the file -> line
}

// at is "file:line" of the object's field (a path below the object such
// as targets[0].url, or "" for the object), or of the nearest part of it
// the file has.
func (s source) at(field string) string {
	p := s.prefix
	if field != "" {
		p += "." + field
	}
	for {
		if l, ok := s.lines[p]; ok {
			return fmt.Sprintf("%s:%d", s.file, l)
		}
		i := strings.LastIndexAny(p, ".[")
		if i <= 0 {
			return s.file
		}
		p = p[:i]
	}
}

// field is the path of one of the object's fields, for messages.
func (s source) field(f string) string {
	if f == "" {
		return s.prefix
	}
	return s.prefix + "." + f
}

// configError is one refused entry of a file: where it is, which field,
// and why.
type configError struct {
	at, field, msg string
}

func (e configError) String() string {
	if e.field == "" {
		return e.at + ": " + e.msg
	}
	return e.at + ": " + e.field + ": " + e.msg
}

// configErrors are every refused entry, as one error.
type configErrors []configError

func (es configErrors) Error() string {
	lines := make([]string, 0, len(es))
	for i, e := range es {
		if i == 20 {
			lines = append(lines, fmt.Sprintf("... and %d more", len(es)-i))
			break
		}
		lines = append(lines, e.String())
	}
	return strings.Join(lines, "\n")
}

func (es *configErrors) add(s source, field, format string, args ...any) {
	*es = append(*es, configError{at: s.at(field), field: s.field(field), msg: fmt.Sprintf(format, args...)})
}

func (es configErrors) err() error {
	if len(es) == 0 {
		return nil
	}
	sort.SliceStable(es, func(i, j int) bool { return lessPos(es[i].at, es[j].at) })
	return es
}

// lessPos orders "file:line" positions by file, then line.
func lessPos(a, b string) bool {
	fa, la := splitPos(a)
	fb, lb := splitPos(b)
	if fa != fb {
		return fa < fb
	}
	return la < lb
}

func splitPos(p string) (string, int) {
	i := strings.LastIndexByte(p, ':')
	if i < 0 {
		return p, 0
	}
	n, err := strconv.Atoi(p[i+1:])
	if err != nil {
		return p, 0
	}
	return p[:i], n
}

// configFiles are the files path names: the file itself, or every .yaml,
// .yml and .json file of the directory, in name order.
func configFiles(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				out = append(out, filepath.Join(path, e.Name()))
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no .yaml, .yml or .json file", path)
	}
	return out, nil
}

// loadTenantConfig reads the files of path (configFiles) into one configuration,
// refusing unknown fields, wrong types, and objects named twice.
func loadTenantConfig(path string) (*tenantConfig, error) {
	files, err := configFiles(path)
	if err != nil {
		return nil, err
	}
	out := &tenantConfig{}
	var errs configErrors
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cfg, ferrs := parseTenantConfig(f, data)
		errs = append(errs, ferrs...)
		if cfg == nil {
			continue
		}
		out.Upstreams = append(out.Upstreams, cfg.Upstreams...)
		out.APIs = append(out.APIs, cfg.APIs...)
		out.Plans = append(out.Plans, cfg.Plans...)
		if cfg.Portal != nil {
			if out.Portal != nil {
				errs.add(cfg.Portal.src, "", "the portal is also set at %s", out.Portal.src.at(""))
				continue
			}
			out.Portal = cfg.Portal
		}
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// parseTenantConfig parses one file (YAML, or JSON, which YAML reads too).
func parseTenantConfig(file string, data []byte) (*tenantConfig, configErrors) {
	var errs configErrors
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		at, msg := file, err.Error()
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			msg = m[2]
			if m[1] != "" {
				at = file + ":" + m[1]
			}
		}
		return nil, configErrors{{at: at, msg: "not YAML or JSON: " + msg}}
	}
	if len(doc.Content) == 0 {
		return &tenantConfig{}, nil // empty
	}
	root := doc.Content[0]
	lines := map[string]int{}
	w := nodeChecker{file: file, lines: lines, errs: &errs}
	w.check(root, reflect.TypeFor[tenantConfig](), "")
	if len(errs) > 0 {
		return nil, errs
	}
	var cfg tenantConfig
	if err := root.Decode(&cfg); err != nil {
		return nil, configErrors{{at: file, msg: err.Error()}}
	}
	src := func(prefix string) source {
		return source{file: file, prefix: prefix, lines: lines}
	}
	for i, u := range cfg.Upstreams {
		u.src = src(fmt.Sprintf("upstreams[%d]", i))
	}
	for i, a := range cfg.APIs {
		a.src = src(fmt.Sprintf("apis[%d]", i))
	}
	for i, p := range cfg.Plans {
		p.src = src(fmt.Sprintf("plans[%d]", i))
	}
	if cfg.Portal != nil {
		cfg.Portal.src = src("portal")
	}
	return &cfg, nil
}

// nodeChecker checks a YAML node against the Go type it decodes into,
// naming the line of every unknown field and wrong type, and records the
// line of every path.
type nodeChecker struct {
	file  string
	lines map[string]int
	errs  *configErrors
}

var openAPIDocType = reflect.TypeFor[openAPIDoc]()

func (w nodeChecker) fail(n *yaml.Node, path, format string, args ...any) {
	*w.errs = append(*w.errs, configError{at: fmt.Sprintf("%s:%d", w.file, n.Line), field: path, msg: fmt.Sprintf(format, args...)})
}

func (w nodeChecker) check(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, seen := w.lines[path]; !seen && path != "" {
		w.lines[path] = n.Line
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if t.Kind() == reflect.Pointer {
		if isNull {
			return
		}
		t = t.Elem()
	}
	where := path
	if where == "" {
		where = "the file"
	}
	switch {
	case t == openAPIDocType:
		if n.Kind != yaml.MappingNode && !(n.Kind == yaml.ScalarNode && n.Tag == "!!str") {
			w.fail(n, where, "must be an OpenAPI document: a mapping, or a string holding one")
		}
	case t.Kind() == reflect.Struct:
		if isNull && path != "" {
			return
		}
		if n.Kind != yaml.MappingNode {
			w.fail(n, where, "must be a mapping")
			return
		}
		fields := map[string]reflect.StructField{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			fields[name] = f
			names = append(names, name)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			f, ok := fields[k.Value]
			switch {
			case !ok:
				w.fail(k, p, "unknown field (the fields here are %s)", strings.Join(names, ", "))
				continue
			case seen[k.Value]:
				w.fail(k, p, "is set twice")
				continue
			}
			seen[k.Value] = true
			w.lines[p] = k.Line
			w.check(v, f.Type, p)
		}
	case t.Kind() == reflect.Slice:
		if isNull {
			return
		}
		if n.Kind != yaml.SequenceNode {
			w.fail(n, where, "must be a list")
			return
		}
		for i, e := range n.Content {
			w.check(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, where, "must be %s", kindName(t.Kind()))
			return
		}
		ok := true // a string takes any scalar
		switch t.Kind() {
		case reflect.Bool:
			ok = n.Tag == "!!bool"
		case reflect.Int, reflect.Int64:
			ok = n.Tag == "!!int"
		case reflect.Float64:
			ok = n.Tag == "!!int" || n.Tag == "!!float"
		}
		if !ok {
			w.fail(n, where, "must be %s, not %q", kindName(t.Kind()), n.Value)
		}
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return k.String()
}

// Validation of the file alone: what can be known before asking the
// control plane. References to objects that are not in the file are
// resolved against the tenant later (apply.go), still before any change.

var (
	slugRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	currencyRE = regexp.MustCompile(`^[A-Za-z]{3}$`)
	colorRE    = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
)

func oneOf(v string, allowed ...string) bool { return v == "" || slices.Contains(allowed, v) }

// validate checks cfg's entries on their own and against each other.
func (cfg *tenantConfig) validate() error {
	var errs configErrors
	ups := map[string]*upstreamSpec{}
	for _, u := range cfg.Upstreams {
		switch name := strings.TrimSpace(u.Name); {
		case name == "":
			errs.add(u.src, "name", "is required")
		case ups[name] != nil:
			errs.add(u.src, "name", "upstream %q is also declared at %s", name, ups[name].src.at(""))
		default:
			ups[name] = u
		}
		if !oneOf(u.Algorithm, "round_robin", "weighted", "least_conn", "consistent_hash", "random") {
			errs.add(u.src, "algorithm", "must be round_robin, weighted, least_conn, consistent_hash or random")
		}
		if len(u.Targets) == 0 {
			errs.add(u.src, "targets", "at least one target is required")
		}
		seen := map[string]bool{}
		for i, t := range u.Targets {
			f := fmt.Sprintf("targets[%d]", i)
			pu, err := url.Parse(t.URL)
			switch {
			case t.URL == "":
				errs.add(u.src, f+".url", "is required")
			case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
				errs.add(u.src, f+".url", "must be an http:// or https:// URL")
			case seen[pu.String()]:
				errs.add(u.src, f+".url", "duplicates another target")
			default:
				seen[pu.String()] = true
			}
			if t.Weight != nil && (*t.Weight < 1 || *t.Weight > 1000) {
				errs.add(u.src, f+".weight", "must be between 1 and 1000")
			}
		}
		if (u.Algorithm == "consistent_hash") != (u.HashOn != nil) {
			if u.HashOn == nil {
				errs.add(u.src, "hash_on", "is required for consistent_hash")
			} else {
				errs.add(u.src, "hash_on", "applies to consistent_hash only")
			}
		}
		if h := u.HashOn; h != nil && (h.Source == "" || !oneOf(h.Source, "header", "cookie", "client_ip", "consumer")) {
			errs.add(u.src, "hash_on.source", "must be header, cookie, client_ip or consumer")
		}
	}
	apis := map[string]*apiSpec{}
	paths := map[string]*apiSpec{}
	for _, a := range cfg.APIs {
		if strings.TrimSpace(a.Name) == "" {
			errs.add(a.src, "name", "is required")
		}
		switch {
		case !slugRE.MatchString(a.Slug):
			errs.add(a.src, "slug", "must be a lowercase DNS label: 1-63 characters a-z, 0-9 and '-'")
		case apis[a.Slug] != nil:
			errs.add(a.src, "slug", "API %q is also declared at %s", a.Slug, apis[a.Slug].src.at(""))
		default:
			apis[a.Slug] = a
		}
		switch {
		case !strings.HasPrefix(a.BasePath, "/"):
			errs.add(a.src, "base_path", "must start with /")
		case paths[a.BasePath] != nil:
			errs.add(a.src, "base_path", "is also the base path of API %q (%s)", paths[a.BasePath].Slug, paths[a.BasePath].src.at(""))
		default:
			paths[a.BasePath] = a
		}
		if a.Upstream == "" {
			errs.add(a.src, "upstream", "is required: the name of an upstream")
		}
		if !oneOf(a.Auth, "key", "jwt", "none") {
			errs.add(a.src, "auth", "must be key, jwt or none")
		}
		switch {
		case a.Auth == "jwt" && a.JWT == nil:
			errs.add(a.src, "jwt", "is required for auth jwt (issuer and audiences at least)")
		case a.Auth != "jwt" && a.JWT != nil:
			errs.add(a.src, "jwt", "applies to APIs with auth jwt only")
		}
		if a.RateLimit != nil && a.RateLimit.Scope != "" {
			errs.add(a.src, "rate_limit.scope", "does not apply to an API (it counts every caller together)")
		}
		if a.OpenAPI != nil && len(bytes.TrimSpace(a.OpenAPI.text)) == 0 {
			errs.add(a.src, "openapi", "is empty")
		}
	}
	plans := map[string]*planSpec{}
	for _, p := range cfg.Plans {
		switch name := strings.TrimSpace(p.Name); {
		case name == "":
			errs.add(p.src, "name", "is required")
		case plans[name] != nil:
			errs.add(p.src, "name", "plan %q is also declared at %s", name, plans[name].src.at(""))
		default:
			plans[name] = p
		}
		if p.RateLimit != nil && !oneOf(p.RateLimit.Scope, "key", "consumer") {
			errs.add(p.src, "rate_limit.scope", "must be key or consumer")
		}
		if p.Quota != nil && !oneOf(p.Quota.Period, "day", "month") {
			errs.add(p.src, "quota.period", "must be day or month")
		}
		if p.Price != nil {
			if !currencyRE.MatchString(p.Price.Currency) {
				errs.add(p.src, "price.currency", "must be a three-letter ISO 4217 code such as usd")
			}
			if !oneOf(p.Price.Interval, "day", "week", "month", "year") {
				errs.add(p.src, "price.interval", "must be day, week, month or year")
			}
		}
		seen := map[string]bool{}
		for i, s := range p.APIs {
			if seen[s] {
				errs.add(p.src, fmt.Sprintf("apis[%d]", i), "lists API %q twice", s)
			}
			seen[s] = true
		}
	}
	if p := cfg.Portal; p != nil {
		if !oneOf(p.Signup, "open", "approval", "invite") {
			errs.add(p.src, "signup", "must be open, approval or invite")
		}
		if p.AccentColor != "" && !colorRE.MatchString(strings.TrimSpace(p.AccentColor)) {
			errs.add(p.src, "accent_color", "must be a colour like #4f46e5")
		}
	}
	return errs.err()
}

// Normal forms. filled sets every field a server fills when it is left
// out to that default, as the server does (services/catalog and
// services/settings), so that a file and the tenant compare equal exactly
// when applying the file would change nothing; bare is the inverse, for
// export: defaults left out.

const (
	defaultHealthIntervalMS = 10_000
	defaultHealthTimeoutMS  = 2_000
)

func intPtr(v int) *int    { return &v }
func boolPtr(v bool) *bool { return &v }

// normalURL is a target URL as the server stores it.
func normalURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.String()
	}
	return raw
}

func (u upstreamSpec) filled() upstreamSpec {
	u.Name = strings.TrimSpace(u.Name)
	if u.Algorithm == "" {
		u.Algorithm = "round_robin"
	}
	ts := make([]targetSpec, len(u.Targets))
	for i, t := range u.Targets {
		ts[i] = targetSpec{URL: normalURL(t.URL), Weight: t.Weight}
		if t.Weight == nil {
			ts[i].Weight = intPtr(1)
		}
	}
	u.Targets = ts
	if h := u.HealthCheck; h != nil {
		hc := *h
		if hc.Path == "" {
			hc.Path = "/"
		}
		if hc.IntervalMS == 0 {
			hc.IntervalMS = defaultHealthIntervalMS
		}
		if hc.TimeoutMS == 0 {
			hc.TimeoutMS = defaultTimeout(hc.IntervalMS)
		}
		if hc.HealthyThreshold == 0 {
			hc.HealthyThreshold = 2
		}
		if hc.UnhealthyThreshold == 0 {
			hc.UnhealthyThreshold = 3
		}
		u.HealthCheck = &hc
	}
	return u
}

// defaultTimeout is the probe timeout the server sets for interval.
func defaultTimeout(intervalMS int) int {
	if intervalMS >= 100 && intervalMS <= 3_600_000 {
		return min(defaultHealthTimeoutMS, intervalMS)
	}
	return defaultHealthTimeoutMS
}

func (u upstreamSpec) bare() upstreamSpec {
	if u.Algorithm == "round_robin" {
		u.Algorithm = ""
	}
	ts := make([]targetSpec, len(u.Targets))
	for i, t := range u.Targets {
		ts[i] = t
		if t.Weight != nil && *t.Weight == 1 {
			ts[i].Weight = nil
		}
	}
	u.Targets = ts
	if h := u.HealthCheck; h != nil {
		hc := *h
		if hc.TimeoutMS == defaultTimeout(hc.IntervalMS) {
			hc.TimeoutMS = 0
		}
		if hc.Path == "/" {
			hc.Path = ""
		}
		if hc.IntervalMS == defaultHealthIntervalMS {
			hc.IntervalMS = 0
		}
		if hc.HealthyThreshold == 2 {
			hc.HealthyThreshold = 0
		}
		if hc.UnhealthyThreshold == 3 {
			hc.UnhealthyThreshold = 0
		}
		u.HealthCheck = &hc
	}
	return u
}

func (a apiSpec) filled() apiSpec {
	a.Name = strings.TrimSpace(a.Name)
	if a.Auth == "" {
		a.Auth = "key"
	}
	if a.StripBasePath == nil {
		a.StripBasePath = boolPtr(true)
	}
	if a.RateLimit == nil {
		a.RateLimit = &rateLimitSpec{}
	}
	if j := a.JWT; j != nil {
		c := *j
		if c.Claim == "" {
			c.Claim = "sub"
		}
		if len(c.Algorithms) == 0 {
			c.Algorithms = []string{"RS256"}
		}
		a.JWT = &c
	}
	a.OpenAPI = nil // compared on its own
	return a
}

func (a apiSpec) bare() apiSpec {
	if a.Auth == "key" {
		a.Auth = ""
	}
	if a.StripBasePath != nil && *a.StripBasePath {
		a.StripBasePath = nil
	}
	if a.RateLimit != nil && *a.RateLimit == (rateLimitSpec{}) {
		a.RateLimit = nil
	}
	if j := a.JWT; j != nil {
		c := *j
		if c.Claim == "sub" {
			c.Claim = ""
		}
		if slices.Equal(c.Algorithms, []string{"RS256"}) {
			c.Algorithms = nil
		}
		a.JWT = &c
	}
	return a
}

func (p planSpec) filled() planSpec {
	p.Name = strings.TrimSpace(p.Name)
	rl := rateLimitSpec{}
	if p.RateLimit != nil {
		rl = *p.RateLimit
	}
	if rl.Scope == "" {
		rl.Scope = "key"
	}
	p.RateLimit = &rl
	q := quotaSpec{}
	if p.Quota != nil {
		q = *p.Quota
	}
	if q.Period == "" {
		q.Period = "month"
	}
	p.Quota = &q
	p.APIs = slices.Sorted(slices.Values(p.APIs))
	if p.Price != nil {
		pr := *p.Price
		pr.Currency = strings.ToLower(pr.Currency)
		if pr.Interval == "" {
			pr.Interval = "month"
		}
		p.Price = &pr
	}
	return p
}

func (p planSpec) bare() planSpec {
	if rl := p.RateLimit; rl != nil {
		c := *rl
		if c.Scope == "key" {
			c.Scope = ""
		}
		p.RateLimit = &c
		if c == (rateLimitSpec{}) {
			p.RateLimit = nil
		}
	}
	if q := p.Quota; q != nil {
		c := *q
		if c.Period == "month" {
			c.Period = ""
		}
		p.Quota = &c
		if c == (quotaSpec{}) {
			p.Quota = nil
		}
	}
	if pr := p.Price; pr != nil {
		c := *pr
		if c.Interval == "month" {
			c.Interval = ""
		}
		p.Price = &c
	}
	if len(p.APIs) == 0 {
		p.APIs = nil
	}
	return p
}

func (p portalSpec) filled() portalSpec {
	if p.Signup == "" {
		p.Signup = "open"
	}
	p.DisplayName = strings.TrimSpace(p.DisplayName)
	p.AccentColor = strings.ToLower(strings.TrimSpace(p.AccentColor))
	p.LogoURL = strings.TrimSpace(p.LogoURL)
	p.SupportEmail = strings.TrimSpace(p.SupportEmail)
	var doms []string
	for _, d := range p.AllowedEmailDomains {
		d = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(d), "@")))
		if !slices.Contains(doms, d) {
			doms = append(doms, d)
		}
	}
	p.AllowedEmailDomains = doms
	return p
}

func (p portalSpec) bare() portalSpec {
	if p.Signup == "open" {
		p.Signup = ""
	}
	if len(p.AllowedEmailDomains) == 0 {
		p.AllowedEmailDomains = nil
	}
	return p
}

// fieldChange is one field that differs: its path and its values (JSON),
// "" for none.
type fieldChange struct {
	path     string
	from, to string
}

// diffFields lists the leaf fields of two values (of one type, in their
// filled form) that differ, by path, in order.
func diffFields(live, desired any) []fieldChange {
	a, b := map[string]string{}, map[string]string{}
	flatten("", toJSONValue(live), a)
	flatten("", toJSONValue(desired), b)
	var paths []string
	for p := range a {
		paths = append(paths, p)
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	var out []fieldChange
	for _, p := range paths {
		if a[p] != b[p] {
			out = append(out, fieldChange{path: p, from: a[p], to: b[p]})
		}
	}
	return out
}

func toJSONValue(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// flatten records the leaves of v under path: scalars, and empty objects
// and lists (which differ from none).
func flatten(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 && path != "" {
			out[path] = "{}"
		}
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		if len(x) == 0 {
			out[path] = "[]"
		}
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", path, i), e, out)
		}
	default:
		raw, _ := json.Marshal(x)
		out[path] = string(raw)
	}
}

// topFields are the top-level fields the changes touch, in order.
func topFields(changes []fieldChange) []string {
	var out []string
	for _, c := range changes {
		f := c.path
		if i := strings.IndexAny(f, ".["); i >= 0 {
			f = f[:i]
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
