package sdk

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

var (
	tscOnce sync.Once
	tscBin  string
	tscErr  error
)

// tsc returns the TypeScript compiler to check SDKs with: $TOLLGATE_TSC
// (deploy/local/test.sh sets it), else TypeScriptVersion installed with npm
// into the user cache directory. Without npm the test is skipped, unless
// CI=true, where a skipped type check would hide a broken SDK.
func tsc(t *testing.T) string {
	t.Helper()
	tscOnce.Do(func() { tscBin, tscErr = findTSC() })
	if tscErr != nil {
		msg := fmt.Sprintf("no TypeScript compiler: %v; set TOLLGATE_TSC to a tsc %s binary, or install Node.js and npm (deploy/local/test.sh installs it)", tscErr, TypeScriptVersion)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return tscBin
}

func findTSC() (string, error) {
	if p := os.Getenv("TOLLGATE_TSC"); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "tollgate", "typescript-"+TypeScriptVersion)
	bin := filepath.Join(dir, "node_modules", ".bin", "tsc")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm not found")
	}
	// Install beside the final place and rename, so that a concurrent or
	// interrupted install never leaves a half-written compiler there.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".typescript-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--no-package-lock",
		"typescript@"+TypeScriptVersion).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install typescript@%s: %v: %s", TypeScriptVersion, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, statErr := os.Stat(bin); statErr != nil {
			return "", err
		}
	}
	return bin, nil
}

func runTSC(t *testing.T, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tsc(t), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		index, _ := os.ReadFile(filepath.Join(dir, "index.ts"))
		t.Fatalf("tsc %s: %v\n%s\nindex.ts:\n%s", strings.Join(args, " "), err, out, numbered(string(index)))
	}
}

func numbered(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = fmt.Sprintf("%4d %s", i+1, lines[i])
	}
	return strings.Join(lines, "\n")
}

// TestTypeScriptSDKTypeChecks runs `tsc --strict --noEmit` over the
// TypeScript SDK of every test document and of documents that stress names,
// literals and recursion.
func TestTypeScriptSDKTypeChecks(t *testing.T) {
	t.Parallel()
	tsc(t)
	docs := append(testDocuments(t),
		testDocument{"extensions", []byte(extensionsDocument)},
		testDocument{"names and literals", []byte(namesDocument)},
		testDocument{"circular aliases", []byte(circularDocument)})
	var g Generator
	for _, d := range docs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			a, err := g.Build(context.Background(), testRequest(TypeScript, d.doc))
			if err != nil {
				t.Fatal(err)
			}
			dir := unzip(t, a, t.TempDir())
			runTSC(t, dir, "--strict", "--noEmit", "-p", ".")
			var pkg struct{ Name, Version string }
			data, _ := os.ReadFile(filepath.Join(dir, "package.json"))
			if err := json.Unmarshal(data, &pkg); err != nil || pkg.Name != "@acme/pets-sdk" || !strings.HasSuffix(pkg.Version, a.Version[strings.LastIndex(a.Version, "+"):]) {
				t.Errorf("package.json name %q version %q (err %v)", pkg.Name, pkg.Version, err)
			}
		})
	}
}

// namesDocument has names and strings that are not TypeScript identifiers
// or that would end a comment or a template literal.
const namesDocument = `{"openapi":"3.0.3","info":{"title":"Names */ here","version":"v1 (beta)"},
"paths":{
 "/a/{default}/{for}":{"parameters":[{"name":"default","in":"path","required":true,"schema":{"type":"string"}},{"name":"for","in":"path","required":true,"schema":{"type":"integer"}}],
  "get":{"operationId":"constructor","summary":"Ends */ a comment","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Quote"}}}}}},
  "post":{"operationId":"123 go!","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Promise"}}}}}},
  "put":{"operationId":"Constructor","responses":{"204":{"description":"none"}}}},
 "/b":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/1st"}}}}}}}},
"components":{"schemas":{
 "Quote":{"type":"string","enum":["it's \"quoted\"","back` + "`" + `tick","${x}","line\u2028sep","*/"]},
 "Promise":{"type":"object","properties":{"then":{"type":"string"},"constructor":{"type":"integer","enum":[1,2.5,-3]},"":{"type":"boolean"}}},
 "1st":{"type":"number"},
 "first":{"type":"string"},
 "First":{"type":"boolean"},
 "Client":{"type":"object"},
 "ApiError":{"type":"object","additionalProperties":false}}}}`

// circularDocument has aliases that refer to each other where TypeScript
// cannot defer the reference.
const circularDocument = `{"openapi":"3.0.3","info":{"title":"Cyc","version":"1"},
"paths":{"/a":{"get":{"operationId":"getA","responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/A"}}}}}}}},
"components":{"schemas":{
 "A":{"oneOf":[{"$ref":"#/components/schemas/B"},{"type":"string"}]},
 "B":{"allOf":[{"$ref":"#/components/schemas/A"}]},
 "C":{"type":"array","items":{"$ref":"#/components/schemas/C"}},
 "D":{"type":"object","additionalProperties":{"$ref":"#/components/schemas/D"}}}}}`

// TestTypeScriptSDKCallsAPI compiles the petstore SDK to JavaScript and runs
// it with Node against an httptest backend: URLs, query, headers, bodies,
// the API key, and ApiError.
func TestTypeScriptSDKCallsAPI(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on PATH")
	}
	tsc(t)
	var mu sync.Mutex
	var seen []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s key=%s ct=%s %s", r.Method, r.URL.RequestURI(), r.Header.Get("X-API-Key"), r.Header.Get("Content-Type"), body))
		mu.Unlock()
		if r.Header.Get("X-API-Key") != "k1" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"title":"Unauthorized","status":401}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/base/pets":
			_, _ = w.Write([]byte(`{"items":[{"id":"p1","name":"Rex","status":"available"}],"next":null}`))
		case r.Method == "POST" && r.URL.Path == "/base/pets":
			w.WriteHeader(201)
			_, _ = w.Write([]byte(`{"id":"p2","name":"Tom"}`))
		case r.Method == "GET" && r.URL.EscapedPath() == "/base/pets/a%20b":
			_, _ = w.Write([]byte(`{"id":"a b","name":"Spaces"}`))
		case r.Method == "DELETE":
			w.WriteHeader(204)
		default:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"title":"Not found","status":404}`))
		}
	}))
	defer backend.Close()

	var g Generator
	a, err := g.Build(context.Background(), testRequest(TypeScript, testDocuments(t)[0].doc))
	if err != nil {
		t.Fatal(err)
	}
	dir := unzip(t, a, t.TempDir())
	runTSC(t, dir, "-p", ".")
	script := `import { Client, ApiError, SDK_VERSION } from "./dist/index.js";
const client = new Client({ baseUrl: process.env.BASE_URL + "/", apiKey: "k1" });
const out = { version: SDK_VERSION };
out.page = await client.listPets({ limit: 2, tags: ["a", "b"], status: undefined });
out.created = await client.createPet({ name: "Tom", attributes: { color: "grey" } });
out.one = await client.getPet("a b");
out.deleted = await client.deletePetsPetId("p1", { headers: { "X-Trace": "1" } });
for (const c of [client, new Client({ baseUrl: process.env.BASE_URL })]) {
  try {
    await c.getPet("missing");
  } catch (e) {
    out.errors = (out.errors ?? []).concat([e instanceof ApiError ? { status: e.status, body: e.body } : String(e)]);
  }
}
console.log(JSON.stringify(out));
`
	if err := os.WriteFile(filepath.Join(dir, "run.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "run.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+backend.URL+"/base")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var got struct {
		Version string
		Page    struct{ Items []struct{ ID, Name string } }
		Created struct{ ID string }
		One     struct{ ID string }
		Deleted any
		Errors  []struct {
			Status int
			Body   struct{ Title string }
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if got.Version != a.Version || len(got.Page.Items) != 1 || got.Page.Items[0].Name != "Rex" || got.Created.ID != "p2" || got.One.ID != "a b" || got.Deleted != nil {
		t.Errorf("results %s", out)
	}
	if len(got.Errors) != 2 || got.Errors[0].Status != 404 || got.Errors[0].Body.Title != "Not found" || got.Errors[1].Status != 401 {
		t.Errorf("errors %+v, want a 404 ApiError with the problem, then a 401 without a key", got.Errors)
	}
	want := []string{
		"GET /base/pets?limit=2&tags=a&tags=b key=k1 ct= ",
		`POST /base/pets key=k1 ct=application/json {"name":"Tom","attributes":{"color":"grey"}}`,
		"GET /base/pets/a%20b key=k1 ct= ",
		"DELETE /base/pets/p1 key=k1 ct= ",
	}
	mu.Lock()
	defer mu.Unlock()
	for i, w := range want {
		if i >= len(seen) || seen[i] != w {
			t.Errorf("request %d: %q, want %q", i, at(seen, i), w)
		}
	}
}

func at(xs []string, i int) string {
	if i < len(xs) {
		return xs[i]
	}
	return "(none)"
}

// TestTypeScriptGolden keeps the petstore's index.ts under review:
// go test -run TestTypeScriptGolden -update ./services/sdk/ rewrites it.
func TestTypeScriptGolden(t *testing.T) {
	t.Parallel()
	var g Generator
	a, err := g.Build(context.Background(), testRequest(TypeScript, testDocuments(t)[0].doc))
	if err != nil {
		t.Fatal(err)
	}
	got := unzipFile(t, a, "index.ts")
	golden := filepath.Join("testdata", "petstore.index.ts.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("index.ts differs from %s (rerun with -update and review the diff)", golden)
	}
}

func TestTypeScriptNames(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][2]string{
		"listPets": {"ListPets", "listPets"}, "get-user_by.id": {"GetUserById", "getUserById"},
		"GET /pets/{petId}": {"GETPetsPetId", "gETPetsPetId"}, "pet.v2-Info": {"PetV2Info", "petV2Info"}, "*": {"", ""},
	} {
		if p, c := pascal(in), camel(in); p != want[0] || c != want[1] {
			t.Errorf("%q: pascal %q camel %q, want %q %q", in, p, c, want[0], want[1])
		}
	}
	for in, want := range map[string]string{"id": "id", "x-rate": `"x-rate"`, "@type": `"@type"`, "$ref": "$ref", "1a": `"1a"`} {
		if got := tsKey(in); got != want {
			t.Errorf("tsKey(%q) = %s, want %s", in, got, want)
		}
	}
	if got := tsComment("a */ b\nc"); got != `a *\/ b c` {
		t.Errorf("tsComment = %q", got)
	}
	if got := tsString("a\"`${x}\u2028"); got != `"a\"`+"`"+`${x}\u2028"` {
		t.Errorf("tsString = %s", got)
	}
}

// TestTestScriptPinsTypeScript: deploy/local/test.sh installs the TypeScript
// these SDKs are checked with.
func TestTestScriptPinsTypeScript(t *testing.T) {
	t.Parallel()
	script, err := os.ReadFile(filepath.Join("..", "..", "deploy", "local", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "\nts_version="+TypeScriptVersion+" ") {
		t.Errorf("deploy/local/test.sh does not pin ts_version=%s", TypeScriptVersion)
	}
}
