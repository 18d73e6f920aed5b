package main

// This file holds the repository-shape tests: the import rules of DESIGN.md's
// folder table, checked against the real package graph from `go list -deps`,
// and sanity checks of the deployment files (docker-compose.yml and the
// Kubernetes manifests), which no Docker engine or cluster verifies in CI.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// modulePath is the module whose packages the import rules constrain.
const modulePath = "github.com/tollgate/tollgate"

// listedPackage is the part of `go list -json` output the import rules need.
type listedPackage struct {
	ImportPath string
	Standard   bool
	// Imports are the package's direct imports (non-test files).
	Imports []string
	// Deps are all transitive dependencies (non-test files).
	Deps []string
}

// edgeKind says whether a rule looks at direct imports or at the whole
// transitive dependency set of a package.
type edgeKind int

const (
	direct edgeKind = iota
	transitive
)

func (k edgeKind) String() string {
	if k == direct {
		return "imports"
	}
	return "depends on"
}

// importRule is one line of the folder table turned into a check.
type importRule struct {
	name string
	// from selects the module packages the rule applies to: module-relative
	// folder prefixes such as "proxy" (which matches proxy and proxy/...).
	from []string
	// exempt are module-relative folder prefixes that match from but are
	// not constrained by this rule.
	exempt []string
	kind   edgeKind
	// forbidden are import path prefixes that must not appear as an edge
	// (a prefix matches the path itself and anything below it).
	forbidden []string
	// allowed are import paths that are exceptions to forbidden.
	allowed []string
	// stdlibOnly forbids every edge to a non-standard-library package other
	// than the package's own folder.
	stdlibOnly bool
}

// importRules are DESIGN.md's "Folders" table as checks. cmd/tollgate may
// import anything and is constrained only by the stripe rule, which the
// design states for the whole code base ("billing is the only package that
// imports stripe-go").
var importRules = []importRule{
	{
		name:      "proxy never reaches the control plane, Postgres or Stripe",
		from:      []string{"proxy"},
		kind:      transitive,
		forbidden: []string{modulePath + "/services", modulePath + "/web", modulePath + "/billing", modulePath + "/migrations", "github.com/jackc/pgx", "github.com/stripe/stripe-go"},
	},
	{
		name:       "proxy/proxycfg is standard library only",
		from:       []string{"proxy/proxycfg"},
		kind:       transitive,
		stdlibOnly: true,
	},
	{
		name:      "services uses only proxy/proxycfg of proxy",
		from:      []string{"services"},
		kind:      transitive,
		forbidden: []string{modulePath + "/proxy"},
		allowed:   []string{modulePath + "/proxy/proxycfg"},
	},
	{
		name:      "services does not reach web, billing or cmd",
		from:      []string{"services"},
		kind:      transitive,
		forbidden: []string{modulePath + "/web", modulePath + "/billing", modulePath + "/cmd"},
	},
	{
		// Domain packages record changes with services/outbox; the
		// publisher reads the domain through the domain packages (the
		// compiler through catalog.ReadGateways), never the other way.
		name:      "domain packages do not reach the publisher",
		from:      []string{"services"},
		exempt:    []string{"services/publish"},
		kind:      transitive,
		forbidden: []string{modulePath + "/services/publish"},
	},
	{
		// web declares the services it needs as interfaces; cmd builds
		// them. Its dependencies may reach the datastores, its own code
		// does not.
		name:      "web imports neither pgx nor go-redis",
		from:      []string{"web"},
		kind:      direct,
		forbidden: []string{"github.com/jackc/pgx", "github.com/redis/go-redis"},
	},
	{
		name:      "only billing imports stripe-go",
		from:      []string{""},
		exempt:    []string{"billing"},
		kind:      direct,
		forbidden: []string{"github.com/stripe/stripe-go"},
	},
	{
		name:       "migrations is standard library only",
		from:       []string{"migrations"},
		kind:       transitive,
		stdlibOnly: true,
	},
	{
		name:      "web uses only proxy/proxycfg of proxy",
		from:      []string{"web"},
		kind:      transitive,
		forbidden: []string{modulePath + "/proxy"},
		allowed:   []string{modulePath + "/proxy/proxycfg"},
	},
	{
		name:      "billing uses only proxy/proxycfg of proxy and never web",
		from:      []string{"billing"},
		kind:      transitive,
		forbidden: []string{modulePath + "/proxy", modulePath + "/web"},
		allowed:   []string{modulePath + "/proxy/proxycfg"},
	},
}

// hasPathPrefix reports whether path is prefix or lies below it.
func hasPathPrefix(path, prefix string) bool {
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// moduleRel returns the module-relative folder of a module package and
// whether importPath belongs to the module at all.
func moduleRel(importPath string) (string, bool) {
	if importPath == modulePath {
		return "", true
	}
	rel, ok := strings.CutPrefix(importPath, modulePath+"/")
	return rel, ok
}

func matchesAny(rel string, prefixes []string) bool {
	for _, p := range prefixes {
		if hasPathPrefix(rel, p) {
			return true
		}
	}
	return false
}

// applies reports whether the rule constrains the module package at rel.
func (r importRule) applies(rel string) bool {
	return matchesAny(rel, r.from) && !matchesAny(rel, r.exempt)
}

// violates reports whether the edge pkg -> dep breaks the rule.
func (r importRule) violates(pkg, dep string, standard map[string]bool) bool {
	if slices.Contains(r.allowed, dep) {
		return false
	}
	if r.stdlibOnly {
		// A package's own subpackages are part of it (proxycfg/internal/... say).
		return !standard[dep] && !hasPathPrefix(dep, pkg)
	}
	for _, f := range r.forbidden {
		if hasPathPrefix(dep, f) {
			return true
		}
	}
	return false
}

// checkImportRules returns one message per forbidden edge, naming the rule,
// the edge and, for transitive rules, a direct import through which the
// forbidden package is reached.
func checkImportRules(pkgs []listedPackage, rules []importRule) []string {
	standard := make(map[string]bool, len(pkgs))
	byPath := make(map[string]listedPackage, len(pkgs))
	for _, p := range pkgs {
		standard[p.ImportPath] = p.Standard
		byPath[p.ImportPath] = p
	}
	var out []string
	for _, p := range pkgs {
		rel, ok := moduleRel(p.ImportPath)
		if !ok || p.Standard {
			continue
		}
		for _, r := range rules {
			if !r.applies(rel) {
				continue
			}
			edges := p.Imports
			if r.kind == transitive {
				edges = p.Deps
			}
			for _, dep := range edges {
				if dep == "C" && !r.stdlibOnly { // cgo pseudo-package
					continue
				}
				if !r.violates(p.ImportPath, dep, standard) {
					continue
				}
				msg := fmt.Sprintf("rule %q: %s %s %s", r.name, p.ImportPath, r.kind, dep)
				if r.kind == transitive && !slices.Contains(p.Imports, dep) {
					if via := viaImport(p, dep, byPath); via != "" {
						msg += " (through its import of " + via + ")"
					}
				}
				out = append(out, msg)
			}
		}
	}
	return out
}

// viaImport names a direct import of p whose dependency set contains dep.
func viaImport(p listedPackage, dep string, byPath map[string]listedPackage) string {
	for _, imp := range p.Imports {
		if slices.Contains(byPath[imp].Deps, dep) {
			return imp
		}
	}
	return ""
}

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH or in GOROOT: %v", err)
	}
	return p
}

// moduleRoot is the repository root: the test runs in cmd/tollgate.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("module root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root %s has no go.mod: %v", root, err)
	}
	return root
}

// listPackages runs `go list -e -deps -json ./...` in the module root. -e keeps
// the listing going when a package does not compile: import edges are known
// from the source headers alone, and a compile error is for other tests.
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	cmd := exec.Command(goTool(t), "list", "-e", "-deps", "-json=ImportPath,Standard,Imports,Deps", "./...")
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportRules fails on any edge of the real package graph that DESIGN.md's
// folder table forbids.
func TestImportRules(t *testing.T) {
	t.Parallel()
	pkgs := listPackages(t)

	// Guard against a vacuous pass: the contract package must be listed.
	found := false
	for _, p := range pkgs {
		if p.ImportPath == modulePath+"/proxy/proxycfg" {
			found = true
		}
	}
	if !found {
		t.Fatalf("go list did not report %s/proxy/proxycfg; the package listing is broken", modulePath)
	}

	for _, v := range checkImportRules(pkgs, importRules) {
		t.Errorf("forbidden import edge: %s", v)
	}
}

// TestCheckImportRules proves that the checker reports each kind of forbidden
// edge and accepts the allowed ones, on hand-made package graphs.
func TestCheckImportRules(t *testing.T) {
	t.Parallel()
	m := func(rel string) string { return modulePath + "/" + rel }
	std := func(paths ...string) []listedPackage {
		var out []listedPackage
		for _, p := range paths {
			out = append(out, listedPackage{ImportPath: p, Standard: true})
		}
		return out
	}
	base := std("fmt", "net/http", "embed", "crypto/sha256")
	stripe := listedPackage{ImportPath: "github.com/stripe/stripe-go/v76"}
	pgx := listedPackage{ImportPath: "github.com/jackc/pgx/v5"}
	proxycfg := listedPackage{ImportPath: m("proxy/proxycfg"), Imports: []string{"crypto/sha256"}, Deps: []string{"crypto/sha256"}}
	services := listedPackage{ImportPath: m("services/keys"), Imports: []string{m("proxy/proxycfg"), "github.com/jackc/pgx/v5"}, Deps: []string{"crypto/sha256", m("proxy/proxycfg"), "github.com/jackc/pgx/v5"}}
	billing := listedPackage{ImportPath: m("billing"), Imports: []string{m("services/keys"), "github.com/stripe/stripe-go/v76"}, Deps: []string{m("services/keys"), m("proxy/proxycfg"), "github.com/jackc/pgx/v5", "github.com/stripe/stripe-go/v76", "crypto/sha256"}}
	web := listedPackage{ImportPath: m("web"), Imports: []string{m("billing"), m("services/keys")}, Deps: billing.Deps}
	good := append(slices.Clone(base), stripe, pgx, proxycfg, services, billing, web)

	tests := []struct {
		name  string
		pkgs  []listedPackage
		wants []string // substrings, one per expected violation
	}{
		{name: "the designed graph passes", pkgs: good},
		{
			name: "proxy reaching services through a helper",
			pkgs: append(slices.Clone(good),
				listedPackage{ImportPath: m("proxy/helper"), Imports: []string{m("services/keys")}, Deps: []string{m("services/keys"), m("proxy/proxycfg"), "github.com/jackc/pgx/v5", "crypto/sha256"}},
			),
			wants: []string{
				m("proxy/helper") + " depends on " + m("services/keys") + "",
				m("proxy/helper") + " depends on github.com/jackc/pgx/v5 (through its import of " + m("services/keys") + ")",
			},
		},
		{
			name:  "proxycfg gaining a third-party dependency",
			pkgs:  append(slices.Clone(good), listedPackage{ImportPath: m("proxy/proxycfg/sub"), Imports: []string{"gopkg.in/yaml.v3"}, Deps: []string{"gopkg.in/yaml.v3"}}, listedPackage{ImportPath: "gopkg.in/yaml.v3"}),
			wants: []string{`"proxy/proxycfg is standard library only": ` + m("proxy/proxycfg/sub") + " depends on gopkg.in/yaml.v3"},
		},
		{
			name:  "services importing the router",
			pkgs:  append(slices.Clone(good), listedPackage{ImportPath: m("services/compile"), Imports: []string{m("proxy/router")}, Deps: []string{m("proxy/router")}}, listedPackage{ImportPath: m("proxy/router")}),
			wants: []string{m("services/compile") + " depends on " + m("proxy/router")},
		},
		{
			name:  "web importing stripe directly",
			pkgs:  append(slices.Clone(good), listedPackage{ImportPath: m("web/portal"), Imports: []string{"github.com/stripe/stripe-go/v76"}, Deps: []string{"github.com/stripe/stripe-go/v76"}}),
			wants: []string{`"only billing imports stripe-go": ` + m("web/portal") + " imports github.com/stripe/stripe-go/v76"},
		},
		{
			name: "a domain package importing the publisher",
			pkgs: append(slices.Clone(good),
				listedPackage{ImportPath: m("services/publish"), Imports: []string{m("services/keys")}, Deps: []string{m("services/keys")}},
				listedPackage{ImportPath: m("services/tenants"), Imports: []string{m("services/publish")}, Deps: []string{m("services/publish"), m("services/keys")}},
			),
			wants: []string{`"domain packages do not reach the publisher": ` + m("services/tenants") + " depends on " + m("services/publish")},
		},
		{
			name: "web importing pgx and go-redis itself",
			pkgs: append(slices.Clone(good), listedPackage{ImportPath: "github.com/redis/go-redis/v9"},
				listedPackage{ImportPath: m("web/portal"), Imports: []string{"github.com/jackc/pgx/v5", "github.com/redis/go-redis/v9"},
					Deps: []string{"github.com/jackc/pgx/v5", "github.com/redis/go-redis/v9"}}),
			wants: []string{
				`"web imports neither pgx nor go-redis": ` + m("web/portal") + " imports github.com/jackc/pgx/v5",
				`"web imports neither pgx nor go-redis": ` + m("web/portal") + " imports github.com/redis/go-redis/v9",
			},
		},
		{
			name:  "migrations importing pgx",
			pkgs:  append(slices.Clone(good), listedPackage{ImportPath: m("migrations"), Imports: []string{"embed", "github.com/jackc/pgx/v5"}, Deps: []string{"embed", "github.com/jackc/pgx/v5"}}),
			wants: []string{m("migrations") + " depends on github.com/jackc/pgx/v5"},
		},
		{
			name:  "web importing the proxy's balancer",
			pkgs:  append(slices.Clone(good), listedPackage{ImportPath: m("web/tenant"), Imports: []string{m("proxy/balance")}, Deps: []string{m("proxy/balance")}}, listedPackage{ImportPath: m("proxy/balance")}),
			wants: []string{m("web/tenant") + " depends on " + m("proxy/balance")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := checkImportRules(tt.pkgs, importRules)
			if len(got) != len(tt.wants) {
				t.Fatalf("got %d violations, want %d:\n%s", len(got), len(tt.wants), strings.Join(got, "\n"))
			}
			for i, want := range tt.wants {
				if !strings.Contains(got[i], want) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], want)
				}
			}
		})
	}
}

// composeFile is the part of docker-compose.yml the tests check.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     any               `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Healthcheck *struct {
			Test any `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Build *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
	} `yaml:"services"`
}

// TestComposeFile checks that docker-compose.yml parses and describes the
// stack: datastores, a one-shot migration, the control plane and two proxy
// workers started in the right order from the image of deploy/Dockerfile.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatalf("read docker-compose.yml: %v", err)
	}
	var cf composeFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(false)
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("parse docker-compose.yml: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "deploy", "Dockerfile")); err != nil {
		t.Fatalf("deploy/Dockerfile: %v", err)
	}

	tests := []struct {
		name      string
		service   string
		hostPort  string            // a published "host:container" port prefix, if any
		dependsOn map[string]string // service -> condition
		command   string            // first word of the tollgate subcommand
	}{
		{name: "postgres", service: "postgres"},
		{name: "redis", service: "redis"},
		{name: "migrate runs once the database is healthy", service: "migrate", command: "migrate",
			dependsOn: map[string]string{"postgres": "service_healthy"}},
		{name: "control starts after migrations", service: "control", command: "control", hostPort: "8080:",
			dependsOn: map[string]string{"migrate": "service_completed_successfully", "redis": "service_healthy"}},
		{name: "proxy1 on 8000", service: "proxy1", command: "proxy", hostPort: "8000:",
			dependsOn: map[string]string{"redis": "service_healthy", "control": "service_healthy"}},
		{name: "proxy2 on 8001", service: "proxy2", command: "proxy", hostPort: "8001:",
			dependsOn: map[string]string{"redis": "service_healthy", "control": "service_healthy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc, ok := cf.Services[tt.service]
			if !ok {
				t.Fatalf("docker-compose.yml has no service %q", tt.service)
			}
			if tt.service != "migrate" && svc.Healthcheck == nil {
				t.Errorf("service %q has no healthcheck", tt.service)
			}
			for dep, cond := range tt.dependsOn {
				got, ok := svc.DependsOn[dep]
				if !ok {
					t.Errorf("service %q does not depend on %q", tt.service, dep)
				} else if got.Condition != cond {
					t.Errorf("service %q depends on %q with condition %q, want %q", tt.service, dep, got.Condition, cond)
				}
			}
			if tt.hostPort != "" && !slices.ContainsFunc(svc.Ports, func(p string) bool { return strings.HasPrefix(p, tt.hostPort) }) {
				t.Errorf("service %q publishes %v, want a port %s...", tt.service, svc.Ports, tt.hostPort)
			}
			if tt.command != "" {
				if svc.Image != "tollgate:local" {
					t.Errorf("service %q image = %q, want the one built image tollgate:local", tt.service, svc.Image)
				}
				if got := firstWord(svc.Command); got != tt.command {
					t.Errorf("service %q command starts with %q, want %q", tt.service, got, tt.command)
				}
			}
		})
	}

	// Exactly one service builds the image, from deploy/Dockerfile.
	builders := 0
	for name, svc := range cf.Services {
		if svc.Build == nil {
			continue
		}
		builders++
		if svc.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("service %q builds from %q, want deploy/Dockerfile", name, svc.Build.Dockerfile)
		}
	}
	if builders != 1 {
		t.Errorf("%d services build the image, want exactly 1 (the others reuse tollgate:local)", builders)
	}
}

// firstWord returns the first element of a compose command, in string or list form.
func firstWord(cmd any) string {
	switch c := cmd.(type) {
	case string:
		f := strings.Fields(c)
		if len(f) > 0 {
			return f[0]
		}
	case []any:
		if len(c) > 0 {
			return fmt.Sprint(c[0])
		}
	}
	return ""
}

// TestKubernetesManifests checks that deploy/k8s parses as YAML and holds the
// objects the operator needs: control and proxy Deployments and Services, the
// proxy autoscaler, probes on the proxy's admin port and the secret refs.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(moduleRoot(t), "deploy", "k8s")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s (err %v)", dir, err)
	}
	type object struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
	}
	seen := map[string]bool{}
	var deploymentText strings.Builder
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var obj object
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("parse %s: %v", filepath.Base(f), err)
			}
			if obj.Kind == "" {
				continue
			}
			seen[obj.Kind+"/"+obj.Metadata.Name] = true
			if obj.Kind == "Deployment" {
				deploymentText.Write(raw)
			}
		}
	}
	tests := []struct {
		name   string
		object string
	}{
		{name: "control deployment", object: "Deployment/tollgate-control"},
		{name: "control service", object: "Service/tollgate-control"},
		{name: "proxy deployment", object: "Deployment/tollgate-proxy"},
		{name: "proxy service", object: "Service/tollgate-proxy"},
		{name: "proxy autoscaler", object: "HorizontalPodAutoscaler/tollgate-proxy"},
		{name: "migration job", object: "Job/tollgate-migrate"},
	}
	for _, tt := range tests {
		if !seen[tt.object] {
			t.Errorf("%s: deploy/k8s has no %s (have %v)", tt.name, tt.object, keys(seen))
		}
	}
	text := deploymentText.String()
	for _, want := range []string{"readinessProbe", "livenessProbe", "/readyz", "/healthz", "secretKeyRef", "TOLLGATE_SECRET", "TOLLGATE_DATABASE_URL", "TOLLGATE_REDIS_URL"} {
		if !strings.Contains(text, want) {
			t.Errorf("deploy/k8s Deployments do not mention %s", want)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestScriptsAreExecutable checks that the operator scripts the README names
// carry their executable bit and a strict-mode bash header, since CI and
// people run them directly.
func TestScriptsAreExecutable(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	tests := []struct {
		name string
		path string
	}{
		{name: "ci entry point", path: ".ci/run"},
		{name: "local services", path: "deploy/local/services.sh"},
		{name: "dev command", path: "deploy/local/dev.sh"},
		{name: "test command", path: "deploy/local/test.sh"},
		{name: "local redis cluster", path: "deploy/local/redis-cluster.sh"},
		{name: "load bench", path: "bench/load.sh"},
		{name: "fault bench", path: "bench/faults.sh"},
		{name: "fuzz", path: "bench/fuzz.sh"},
		{name: "HTTP/2 conformance", path: "bench/h2spec.sh"},
		{name: "scale bench", path: "bench/scale.sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(root, filepath.FromSlash(tt.path))
			st, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", tt.path, err)
			}
			if st.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s is not executable (mode %v)", tt.path, st.Mode())
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatalf("open %s: %v", tt.path, err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			var head []string
			for i := 0; i < 40 && sc.Scan(); i++ {
				head = append(head, sc.Text())
			}
			if len(head) == 0 || !strings.HasPrefix(head[0], "#!") || !strings.Contains(head[0], "bash") {
				t.Errorf("%s does not start with a bash shebang", tt.path)
			}
			if !slices.ContainsFunc(head, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "set -euo pipefail") }) {
				t.Errorf("%s does not set -euo pipefail near the top", tt.path)
			}
		})
	}
}
