package sdk

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/module"
)

// goModule is a module a generated Go client may import, pinned, with the
// go.sum lines `go mod tidy` writes for it, so that an unzipped SDK builds
// with -mod=readonly and `go mod tidy` changes nothing.
type goModule struct {
	path, version string
	// indirect are the requirements tidy adds for the module's own imports.
	indirect []string
	sums     []string
}

// GoRuntimeVersion is the version of github.com/oapi-codegen/runtime that
// Go SDKs require. v1.8.0 is the newest with `go 1.24` (v1.9.0 needs Go
// 1.26) and has every function oapi-codegen v2.8.2's client code calls.
const GoRuntimeVersion = "v1.8.0"

// goModules are the only non-standard imports a generated client may keep,
// by module path. Every line is what `go mod tidy` wrote in a module with
// the requirement (checked by TestGoSDKBuilds with `go mod tidy -diff`).
var goModules = []goModule{
	{
		path: "github.com/oapi-codegen/runtime", version: GoRuntimeVersion,
		indirect: []string{"github.com/apapsch/go-jsonmerge/v2 v2.0.0", "github.com/google/uuid v1.6.0"},
		sums: []string{
			"github.com/RaveNoX/go-jsoncommentstrip v1.0.0/go.mod h1:78ihd09MekBnJnxpICcwzCMzGrKSKYe4AqU6PDYYpjk=",
			"github.com/apapsch/go-jsonmerge/v2 v2.0.0 h1:axGnT1gRIfimI7gJifB699GoE/oq+F2MU7Dml6nw9rQ=",
			"github.com/apapsch/go-jsonmerge/v2 v2.0.0/go.mod h1:lvDnEdqiQrp0O42VQGgmlKpxL1AP2+08jFMw88y4klk=",
			"github.com/bmatcuk/doublestar v1.1.1/go.mod h1:UD6OnuiIn0yFxxA2le/rnRU1G4RaI4UvFv1sNto9p6w=",
			"github.com/davecgh/go-spew v1.1.0/go.mod h1:J7Y8YcW2NihsgmVo/mv3lAwl/skON4iLHjSsI+c5H38=",
			"github.com/davecgh/go-spew v1.1.1 h1:vj9j/u1bqnvCEfJOwUhtlOARqs3+rkHYY13jYWTU97c=",
			"github.com/davecgh/go-spew v1.1.1/go.mod h1:J7Y8YcW2NihsgmVo/mv3lAwl/skON4iLHjSsI+c5H38=",
			"github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=",
			"github.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=",
			"github.com/juju/gnuflag v0.0.0-20171113085948-2ce1bb71843d/go.mod h1:2PavIy+JPciBPrBUjwbNvtwB6RQlve+hkpll6QSNmOE=",
			"github.com/oapi-codegen/nullable v1.1.0 h1:eAh8JVc5430VtYVnq00Hrbpag9PFRGWLjxR1/3KntMs=",
			"github.com/oapi-codegen/nullable v1.1.0/go.mod h1:KUZ3vUzkmEKY90ksAmit2+5juDIhIZhfDl+0PwOQlFY=",
			"github.com/oapi-codegen/runtime v1.8.0 h1:RJzEgQSJQADEPaG1cYuSCKYai/cCVRE2xnkrqhJs/3c=",
			"github.com/oapi-codegen/runtime v1.8.0/go.mod h1:GwV7hC2hviaMzj+ITfHVRESK5J2W/GefVwIND/bMGvU=",
			"github.com/pmezard/go-difflib v1.0.0 h1:4DBwDE0NGyQoBHbLQYPwSUPoCMWR5BEzIk/f1lZbAQM=",
			"github.com/pmezard/go-difflib v1.0.0/go.mod h1:iKH77koFhYxTK1pcRnkKkqfTogsbg7gZNVY4sRDYZ/4=",
			"github.com/spkg/bom v0.0.0-20160624110644-59b7046e48ad/go.mod h1:qLr4V1qq6nMqFKkMo8ZTx3f+BZEkzsRUY10Xsm2mwU0=",
			"github.com/stretchr/objx v0.1.0/go.mod h1:HFkY916IF+rwdDfMAkV7OtwuqBVzrE8GR6GFx+wExME=",
			"github.com/stretchr/testify v1.3.0/go.mod h1:M5WIy9Dh21IEIfnGCwXGc5bZfKNJtfHm1UVUgZn+9EI=",
			"github.com/stretchr/testify v1.11.1 h1:7s2iGBzp5EwR7/aIZr8ao5+dra3wiQyKjjFuvgVKu7U=",
			"github.com/stretchr/testify v1.11.1/go.mod h1:wZwfW3scLgRK+23gO65QZefKpKQRnfz6sD981Nm4B6U=",
			"gopkg.in/yaml.v3 v3.0.1 h1:fxVm/GzAzEWqLHuvctI91KS9hhNmmWOoWu0XTYJS7CA=",
			"gopkg.in/yaml.v3 v3.0.1/go.mod h1:K4uyk7z7BCEPqu6E+C64Yfv1cQ7kz7rIZviUmN+EgEM=",
		},
	},
	{
		// For YAML responses (oapi-codegen's client decodes them).
		path: "go.yaml.in/yaml/v3", version: "v3.0.4",
		sums: []string{
			"go.yaml.in/yaml/v3 v3.0.4 h1:tfq32ie2Jv2UxXFdLJdh3jXuOzWiL1fo0bu/FbuKpbc=",
			"go.yaml.in/yaml/v3 v3.0.4/go.mod h1:DhzuOOF2ATzADvBadXxruRBLzYTpT36CKvDb3+aBEFg=",
			"gopkg.in/check.v1 v0.0.0-20161208181325-20d25e280405 h1:yhCVgyC4o1eVCa2tZl7eS0r+SDo693bJlVdllGtEeKM=",
			"gopkg.in/check.v1 v0.0.0-20161208181325-20d25e280405/go.mod h1:Co6ibVJAznAaIkqp8huTwlJQCZ016jof/cbN4VW5Yz0=",
		},
	},
}

// goDirective is the go line of every Go SDK's go.mod: the oldest Go that
// both the generated code and the runtime module build with.
const goDirective = "1.24.0"

// goModulesFor maps the imports of a generated client to the modules it
// requires. An import outside the standard library and goModules is an error:
// the SDK would not build as shipped.
func goModulesFor(imports []string) ([]goModule, error) {
	var mods []goModule
	for _, imp := range imports {
		if !strings.Contains(strings.Split(imp, "/")[0], ".") {
			continue // standard library
		}
		i := slices.IndexFunc(goModules, func(m goModule) bool {
			return imp == m.path || strings.HasPrefix(imp, m.path+"/")
		})
		if i < 0 {
			return nil, &GenerateError{Message: fmt.Sprintf("the generated Go client imports %s, which Go SDKs do not ship", imp)}
		}
		if !slices.ContainsFunc(mods, func(m goModule) bool { return m.path == goModules[i].path }) {
			mods = append(mods, goModules[i])
		}
	}
	slices.SortFunc(mods, func(a, b goModule) int { return strings.Compare(a.path, b.path) })
	return mods, nil
}

// goModFile writes go.mod as `go mod tidy` would.
func goModFile(module string, mods []goModule) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "module %s\n\ngo %s\n", module, goDirective)
	var direct, indirect []string
	for _, m := range mods {
		direct = append(direct, m.path+" "+m.version)
		for _, ind := range m.indirect {
			if !slices.Contains(indirect, ind+" // indirect") {
				indirect = append(indirect, ind+" // indirect")
			}
		}
	}
	slices.Sort(indirect)
	for _, block := range [][]string{direct, indirect} {
		switch len(block) {
		case 0:
		case 1:
			fmt.Fprintf(&b, "\nrequire %s\n", block[0])
		default:
			b.WriteString("\nrequire (\n")
			for _, line := range block {
				fmt.Fprintf(&b, "\t%s\n", line)
			}
			b.WriteString(")\n")
		}
	}
	return []byte(b.String())
}

// goSumFile returns the go.sum of mods, sorted as the go command sorts it.
func goSumFile(mods []goModule) []byte {
	var lines []string
	for _, m := range mods {
		for _, s := range m.sums {
			if !slices.Contains(lines, s) {
				lines = append(lines, s)
			}
		}
	}
	if len(lines) == 0 {
		return nil
	}
	// The go command sorts go.sum by module path, then semantic version,
	// with a version's /go.mod line after its module line.
	byKey := map[module.Version]string{}
	keys := make([]module.Version, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		k := module.Version{Path: f[0], Version: f[1]}
		byKey[k] = l
		keys = append(keys, k)
	}
	module.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(byKey[k] + "\n")
	}
	return []byte(b.String())
}
