package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/sdk"
)

// sdkPetsDocument is the API the SDK end-to-end test imports.
const sdkPetsDocument = `{"openapi":"3.0.3","info":{"title":"Pets","version":"1.0.0"},
"paths":{
 "/pets":{"get":{"operationId":"listPets","parameters":[{"name":"limit","in":"query","schema":{"type":"integer"}}],
   "responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"type":"array","items":{"$ref":"#/components/schemas/Pet"}}}}}}}},
 "/pets/{petId}":{"get":{"operationId":"getPet","parameters":[{"name":"petId","in":"path","required":true,"schema":{"type":"string"}}],
   "responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Pet"}}}}}}}},
"components":{"schemas":{"Pet":{"type":"object","required":["id","name"],
 "properties":{"id":{"type":"string"},"name":{"type":"string"},"tag":{"type":"string"}}}}}}`

// sdkProgram is a developer's program using the downloaded Go SDK: two
// operations with a key, one without.
const sdkProgram = `package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	echo "tollgate.sdk/sdkco/echo"
)

func main() {
	// The gateway routes by Host (<tenant>.localhost); the test reaches the
	// worker by its loopback address.
	host := echo.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Host = os.Getenv("SDK_HOST")
		return nil
	})
	ctx := context.Background()
	client, err := echo.NewDefaultClient(echo.WithAPIKey(os.Getenv("SDK_KEY")), host)
	if err != nil {
		panic(err)
	}
	limit := 2
	list, err := client.ListPetsWithResponse(ctx, &echo.ListPetsParams{Limit: &limit})
	if err != nil || list.JSON200 == nil {
		fmt.Printf("list: %v %s %s\n", err, list.Status(), list.Body)
		os.Exit(1)
	}
	for _, p := range *list.JSON200 {
		fmt.Printf("pet %s %s\n", p.Id, p.Name)
	}
	one, err := client.GetPetWithResponse(ctx, "p2")
	if err != nil || one.JSON200 == nil || one.JSON200.Tag == nil {
		fmt.Printf("get: %v %s %s\n", err, one.Status(), one.Body)
		os.Exit(1)
	}
	fmt.Printf("got %s %s %s\n", one.JSON200.Id, one.JSON200.Name, *one.JSON200.Tag)
	anonymous, _ := echo.NewDefaultClient(host)
	if r, err := anonymous.GetPetWithResponse(ctx, "p2"); err == nil {
		fmt.Printf("without key %d\n", r.StatusCode())
	}
	fmt.Println("sdk", echo.SDKVersion)
}
`

// TestSDKGoClientThroughProxy imports a document into an API through /v1,
// generates the API's Go SDK from the stored document as the portal does,
// and runs a program that uses it against a proxy worker.
func TestSDKGoClientThroughProxy(t *testing.T) {
	t.Parallel()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	p := startPlatform(t)
	var mu sync.Mutex
	var seen []string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/pets":
			_, _ = io.WriteString(w, `[{"id":"p1","name":"Rex"},{"id":"p2","name":"Tom","tag":"cat"}]`)
		case "/pets/p2":
			_, _ = io.WriteString(w, `{"id":"p2","name":"Tom","tag":"cat"}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer backend.Close()

	tenant := p.setupTenant("sdkco", []string{backend.URL}, 100)
	p.api("PUT", "/v1/apis/"+tenant.api+"/openapi", tenant.token, json.RawMessage(sdkPetsDocument), 200, nil)
	const host = "sdkco.localhost"
	p.eventually(5*time.Second, "the imported routes are served", func() bool {
		return p.call(0, host, "/echo/pets", tenant.key).status == 200 && p.call(0, host, "/echo/nothing", tenant.key).status == 404
	})

	// The stored document, as the portal's download handler reads it.
	var doc []byte
	if err := p.db.QueryRow(context.Background(), `SELECT document FROM api_documents WHERE api_id = $1`, tenant.api).Scan(&doc); err != nil {
		t.Fatal(err)
	}
	var g sdk.Generator
	a, err := g.Build(context.Background(), sdk.Request{Language: sdk.Go, APIID: tenant.api, APISlug: "echo", APIName: "Echo",
		TenantSlug: "sdkco", BaseURL: "http://" + p.workers[0] + "/echo", Document: doc})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d bytes, sha256 %s", a.FileName, len(a.Zip), a.SHA256)

	dir := t.TempDir()
	sdkDir := unzipSDK(t, a.Zip, dir)
	app := filepath.Join(dir, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	goMod := "module sdke2e\n\ngo 1.24.0\n\nrequire tollgate.sdk/sdkco/echo v0.0.0\n\nreplace tollgate.sdk/sdkco/echo => " + sdkDir + "\n"
	sum, _ := os.ReadFile(filepath.Join(sdkDir, "go.sum")) // the SDK's dependencies are the program's
	for name, data := range map[string][]byte{"go.mod": []byte(goMod), "go.sum": sum, "main.go": []byte(sdkProgram)} {
		if err := os.WriteFile(filepath.Join(app, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	before := len(seen)
	mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "run", ".")
	cmd.Dir = app
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "SDK_HOST="+host, "SDK_KEY="+tenant.key)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run: %v\n%s", err, out)
	}
	t.Logf("go run (compile and two calls) took %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	for _, want := range []string{"pet p1 Rex\n", "pet p2 Tom\n", "got p2 Tom cat\n", "without key 401\n", "sdk " + a.Version + "\n"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("program output lacks %q", want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	calls := seen[before:]
	for _, want := range []string{"GET /pets?limit=2", "GET /pets/p2"} {
		if !slices.Contains(calls, want) {
			t.Errorf("backend saw %q, want %q among them", calls, want)
		}
	}
	if len(calls) != 2 {
		t.Errorf("backend saw %d calls %q, want 2 (the call without a key stops at the gateway)", len(calls), calls)
	}
}

// unzipSDK extracts an SDK archive into dir and returns its folder.
func unzipSDK(t *testing.T, data []byte, dir string) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	root := ""
	for _, f := range zr.File {
		top, _, _ := strings.Cut(f.Name, "/")
		if root == "" {
			root = top
		}
		if top != root || strings.Contains(f.Name, "..") {
			t.Fatalf("archive entry %q outside %s", f.Name, root)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if root == "" {
		t.Fatal(fmt.Errorf("empty archive"))
	}
	return filepath.Join(dir, root)
}
