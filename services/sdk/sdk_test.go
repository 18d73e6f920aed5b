package sdk

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/catalog"
	"github.com/tollgate/tollgate/services/fault"
)

// testDocument is one document of the table every SDK test runs over.
type testDocument struct {
	name string
	// doc is the document as the catalog stores it (normalised by
	// catalog.ParseOpenAPI, like every document the portal passes).
	doc []byte
}

var (
	testDocsOnce sync.Once
	testDocs     []testDocument
	testDocsErr  error
)

// testDocuments returns the table: a petstore (tags, path, query and header
// parameters, request bodies, nested schemas, enums, oneOf, allOf, arrays,
// additionalProperties), a kitchen sink (names that need care, reserved
// words, cookie and header parameters, form, multipart, text, binary and
// YAML bodies, discriminators, anyOf, recursion, nullable enums), an
// OpenAPI 3.1 document (type arrays, const, webhooks) and a generated
// document of 200 operations.
func testDocuments(t testing.TB) []testDocument {
	t.Helper()
	testDocsOnce.Do(func() {
		for _, f := range []struct{ name, file string }{
			{"petstore", "petstore.json"}, {"kitchen sink", "kitchen.json"}, {"openapi 3.1", "openapi31.json"},
		} {
			raw, err := os.ReadFile(filepath.Join("testdata", f.file))
			if err != nil {
				testDocsErr = err
				return
			}
			testDocs = append(testDocs, testDocument{f.name, raw})
		}
		testDocs = append(testDocs, testDocument{"200 operations", bigDocument(200)})
		for i, d := range testDocs {
			_, stored, err := catalog.ParseOpenAPI(context.Background(), d.doc)
			if err != nil {
				testDocsErr = fmt.Errorf("%s: the catalog refuses it: %w", d.name, err)
				return
			}
			testDocs[i].doc = stored
		}
	})
	if testDocsErr != nil {
		t.Fatal(testDocsErr)
	}
	return testDocs
}

// bigDocument returns a document of n operations (n/4 resources with list,
// create, read and delete), each resource with its own schemas.
func bigDocument(n int) []byte {
	type obj = map[string]any
	ref := func(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }
	jsonContent := func(s obj) obj { return obj{"application/json": obj{"schema": s}} }
	paths, schemas := obj{}, obj{}
	schemas["Problem"] = obj{"type": "object", "properties": obj{"type": obj{"type": "string"}, "status": obj{"type": "integer"}}}
	for i := 0; i < n/4; i++ {
		res := fmt.Sprintf("Resource%03d", i)
		schemas[res] = obj{"type": "object", "required": []string{"id", "name"}, "properties": obj{
			"id": obj{"type": "string"}, "name": obj{"type": "string"},
			"state":  obj{"type": "string", "enum": []string{"new", "active", "retired"}},
			"labels": obj{"type": "object", "additionalProperties": obj{"type": "string"}},
			"parts":  obj{"type": "array", "items": obj{"type": "object", "properties": obj{"n": obj{"type": "integer"}}}},
		}}
		schemas[res+"Page"] = obj{"type": "object", "properties": obj{"items": obj{"type": "array", "items": ref(res)}, "next": obj{"type": "string", "nullable": true}}}
		base := fmt.Sprintf("/v1/resource-%03d", i)
		errs := obj{"default": obj{"description": "problem", "content": jsonContent(ref("Problem"))}}
		with := func(m obj) obj {
			for k, v := range errs {
				m[k] = v
			}
			return m
		}
		paths[base] = obj{
			"get": obj{"operationId": fmt.Sprintf("list%s", res), "tags": []string{res},
				"parameters": []obj{{"name": "limit", "in": "query", "schema": obj{"type": "integer"}}, {"name": "cursor", "in": "query", "schema": obj{"type": "string"}}},
				"responses":  with(obj{"200": obj{"description": "ok", "content": jsonContent(ref(res + "Page"))}})},
			"post": obj{"operationId": fmt.Sprintf("create%s", res), "requestBody": obj{"required": true, "content": jsonContent(ref(res))},
				"responses": with(obj{"201": obj{"description": "created", "content": jsonContent(ref(res))}})},
		}
		paths[base+"/{id}"] = obj{
			"parameters": []obj{{"name": "id", "in": "path", "required": true, "schema": obj{"type": "string"}}},
			"get":        obj{"operationId": fmt.Sprintf("get%s", res), "responses": with(obj{"200": obj{"description": "ok", "content": jsonContent(ref(res))}})},
			"delete":     obj{"operationId": fmt.Sprintf("delete%s", res), "responses": with(obj{"204": obj{"description": "gone"}})},
		}
	}
	b, err := json.Marshal(obj{"openapi": "3.0.3", "info": obj{"title": "Big", "version": "9.9.9"}, "paths": paths,
		"components": obj{"schemas": schemas}})
	if err != nil {
		panic(err)
	}
	return b
}

// testRequest is a request for one of the test documents.
func testRequest(lang Language, doc []byte) Request {
	return Request{Language: lang, APIID: "api_1", APISlug: "pets", APIName: "Pets", TenantSlug: "acme",
		BaseURL: "http://acme.localhost:8000/pets", Document: doc}
}

// unzip writes a into dir and returns the SDK's folder.
func unzip(t testing.TB, a Artifact, dir string) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(a.Zip), int64(len(a.Zip)))
	if err != nil {
		t.Fatal(err)
	}
	root := ""
	for _, f := range zr.File {
		top, _, _ := strings.Cut(f.Name, "/")
		if root == "" {
			root = top
		} else if top != root || strings.Contains(f.Name, "..") {
			t.Fatalf("%s: %s is outside the folder %s", a.FileName, f.Name, root)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, root)
}

// TestBuildArtifacts checks what every SDK of every test document carries:
// name, version, checksum, the files, and a CHECKSUM.sha256 that matches.
func TestBuildArtifacts(t *testing.T) {
	t.Parallel()
	var g Generator
	for _, d := range testDocuments(t) {
		for _, lang := range Languages {
			t.Run(d.name+"/"+string(lang), func(t *testing.T) {
				a, err := g.Build(context.Background(), testRequest(lang, d.doc))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s: %d bytes", a.FileName, len(a.Zip))
				sum := sha256.Sum256(a.Zip)
				if a.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("SHA256 %s is not the zip's", a.SHA256)
				}
				if want := "pets-" + string(lang) + "-sdk-" + fileSafe(a.Version) + ".zip"; a.FileName != want {
					t.Errorf("file name %q, want %q", a.FileName, want)
				}
				if !strings.Contains(a.Version, "+") || len(a.Version[strings.LastIndex(a.Version, "+")+1:]) != 12 {
					t.Errorf("version %q, want <info.version>+<12 hex digits>", a.Version)
				}
				if got := a.ChecksumFile(); got != a.SHA256+"  "+a.FileName+"\n" {
					t.Errorf("checksum file %q", got)
				}
				dir := unzip(t, a, t.TempDir())
				want := map[Language][]string{
					Go:         {"go.mod", "client.go", "tollgate.go", "README.md", "VERSION", checksumName},
					TypeScript: {"index.ts", "package.json", "tsconfig.json", "README.md", "VERSION", checksumName},
				}[lang]
				for _, name := range want {
					if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
						t.Errorf("missing %s: %v", name, err)
					}
				}
				if v, _ := os.ReadFile(filepath.Join(dir, "VERSION")); strings.TrimSpace(string(v)) != a.Version {
					t.Errorf("VERSION %q, want %q", v, a.Version)
				}
				checkChecksums(t, dir)
			})
		}
	}
}

// checkChecksums verifies CHECKSUM.sha256 as `sha256sum -c` would, and that
// it lists every other file.
func checkChecksums(t *testing.T, dir string) {
	t.Helper()
	list, err := os.ReadFile(filepath.Join(dir, checksumName))
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	listed := 0
	for _, line := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("checksum line %q", line)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: checksum mismatch", name)
		}
		listed++
	}
	if listed != len(entries)-1 {
		t.Errorf("%s lists %d files, the folder has %d others", checksumName, listed, len(entries)-1)
	}
}

// TestDeterministic: the same document gives the same bytes, from separate
// generators; a re-indented copy gives the same version; a changed one a
// new version.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	doc := testDocuments(t)[0].doc
	var indented bytes.Buffer
	if err := json.Indent(&indented, doc, "", "    "); err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(doc, []byte(`"List pets"`), []byte(`"List all pets"`), 1)
	if bytes.Equal(changed, doc) {
		t.Fatal("the test document has no summary to change")
	}
	for _, lang := range Languages {
		t.Run(string(lang), func(t *testing.T) {
			var g1, g2 Generator
			a1, err1 := g1.Build(context.Background(), testRequest(lang, doc))
			a2, err2 := g2.Build(context.Background(), testRequest(lang, doc))
			a3, err3 := g2.Build(context.Background(), testRequest(lang, indented.Bytes()))
			a4, err4 := g2.Build(context.Background(), testRequest(lang, changed))
			if err := errors.Join(err1, err2, err3, err4); err != nil {
				t.Fatal(err)
			}
			if a1.SHA256 != a2.SHA256 || !bytes.Equal(a1.Zip, a2.Zip) {
				t.Errorf("two builds of one document differ: %s, %s", a1.SHA256, a2.SHA256)
			}
			if a3.Version != a1.Version || a3.SHA256 != a1.SHA256 {
				t.Errorf("re-indented document: version %s and sum %s, want %s and %s", a3.Version, a3.SHA256, a1.Version, a1.SHA256)
			}
			if a4.Version == a1.Version || a4.SHA256 == a1.SHA256 {
				t.Errorf("changed document kept version %s", a4.Version)
			}
			zr, _ := zip.NewReader(bytes.NewReader(a1.Zip), int64(len(a1.Zip)))
			for _, f := range zr.File {
				if !f.Modified.Equal(zipTime) {
					t.Errorf("%s: modified %v, want the fixed %v", f.Name, f.Modified, zipTime)
				}
			}
		})
	}
}

// TestCache: a repeated request is served from the cache, concurrent ones
// build once, anything in the key builds anew, and the cache stays bounded.
func TestCache(t *testing.T) {
	t.Parallel()
	doc := testDocuments(t)[0].doc
	ctx := context.Background()

	t.Run("singleflight", func(t *testing.T) {
		var g Generator
		var wg sync.WaitGroup
		sums := make([]string, 16)
		for i := range sums {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, err := g.Build(ctx, testRequest(Go, doc))
				if err != nil {
					t.Error(err)
				}
				sums[i] = a.SHA256
			}()
		}
		wg.Wait()
		if n := g.builds.Load(); n != 1 {
			t.Errorf("16 concurrent downloads ran %d builds, want 1", n)
		}
		for _, s := range sums {
			if s != sums[0] {
				t.Fatalf("concurrent downloads got different zips")
			}
		}
		if _, err := g.Build(ctx, testRequest(Go, doc)); err != nil || g.builds.Load() != 1 {
			t.Errorf("a later download: err %v, %d builds; want a cache hit", err, g.builds.Load())
		}
	})

	t.Run("key", func(t *testing.T) {
		var g Generator
		base := testRequest(TypeScript, doc)
		other := func(f func(*Request)) Request { r := base; f(&r); return r }
		for i, req := range []Request{
			base,
			other(func(r *Request) { r.BaseURL = "https://acme.gw.example.com/pets" }),
			other(func(r *Request) { r.APIID = "api_2" }),
			other(func(r *Request) { r.APIName = "Pet shop" }),
			other(func(r *Request) { r.Language = Go }),
			other(func(r *Request) { r.Document = testDocuments(t)[2].doc }),
		} {
			if _, err := g.Build(ctx, req); err != nil {
				t.Fatal(err)
			}
			if n := g.builds.Load(); n != int64(i+1) {
				t.Errorf("request %d: %d builds, want %d", i, n, i+1)
			}
		}
		a, _ := g.Build(ctx, other(func(r *Request) { r.BaseURL = "https://acme.gw.example.com/pets" }))
		if n := g.builds.Load(); n != 6 {
			t.Errorf("repeated request: %d builds, want 6", n)
		}
		if !strings.Contains(unzipFile(t, a, "index.ts"), `DEFAULT_BASE_URL = "https://acme.gw.example.com/pets"`) {
			t.Errorf("the base URL is not the SDK's default")
		}
	})

	t.Run("bounded", func(t *testing.T) {
		g := Generator{CacheEntries: 2}
		req := func(i int) Request {
			r := testRequest(TypeScript, doc)
			r.APIID = fmt.Sprint("api_", i)
			return r
		}
		for i := 0; i < 3; i++ {
			if _, err := g.Build(ctx, req(i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := g.cache.len(); n != 2 {
			t.Errorf("%d cached, want 2", n)
		}
		_, _ = g.Build(ctx, req(2)) // most recent: a hit
		_, _ = g.Build(ctx, req(0)) // evicted: a build
		if n := g.builds.Load(); n != 4 {
			t.Errorf("%d builds, want 4 (the oldest evicted)", n)
		}
		off := Generator{CacheEntries: -1}
		_, _ = off.Build(ctx, req(0))
		_, _ = off.Build(ctx, req(0))
		if n := off.builds.Load(); n != 2 {
			t.Errorf("cache off: %d builds, want 2", n)
		}
	})
}

func TestLRUBytes(t *testing.T) {
	t.Parallel()
	c := newLRU(10, 100)
	entry := func(n int) cacheEntry { return cacheEntry{artifact: Artifact{Zip: make([]byte, n)}} }
	c.add("a", entry(60))
	c.add("b", entry(30))
	c.get("a")
	c.add("c", entry(30)) // 120 bytes: b is the least recently used
	if _, ok := c.get("b"); ok {
		t.Error("b kept past the byte bound")
	}
	if _, ok := c.get("a"); !ok {
		t.Error("a evicted although used recently")
	}
	c.add("huge", entry(101))
	if _, ok := c.get("huge"); ok || c.len() != 2 {
		t.Errorf("an entry over the bound was kept (len %d)", c.len())
	}
}

func unzipFile(t *testing.T, a Artifact, name string) string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(a.Zip), int64(len(a.Zip)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/"+name) {
			rc, _ := f.Open()
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			return string(b)
		}
	}
	t.Fatalf("%s has no %s", a.FileName, name)
	return ""
}

// TestBadDocuments: every document that cannot give an SDK says why, in
// words for the user, and with the sentinel the HTTP layer maps.
func TestBadDocuments(t *testing.T) {
	t.Parallel()
	const info = `"openapi":"3.0.3","info":{"title":"T","version":"1"}`
	for _, tc := range []struct {
		name    string
		lang    Language
		doc     string
		is      error
		message string // in GenerateError.Message
	}{
		{name: "no document", lang: Go, doc: " \n", is: ErrNoDocument},
		{name: "unknown language", lang: "cobol", doc: `{}`, is: ErrUnknownLanguage},
		{name: "garbage", lang: TypeScript, doc: "[1, 2", is: ErrCannotGenerate, message: "cannot be read"},
		{name: "swagger 2", lang: Go, doc: `{"swagger":"2.0","info":{"title":"T","version":"1"},"paths":{}}`, is: ErrCannotGenerate, message: "not OpenAPI 3"},
		{name: "invalid", lang: Go, doc: `{` + info + `,"paths":{"/x/{id}":{"get":{"responses":{"200":{"description":"ok"}}}}}}`, is: ErrCannotGenerate, message: "not valid"},
		{name: "no operations", lang: TypeScript, doc: `{` + info + `,"paths":{}}`, is: ErrCannotGenerate, message: "no operations"},
		{name: "external ref", lang: Go, doc: `{` + info + `,"paths":{"/x":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"other.json#/Pet"}}}}}}}}}`, is: ErrCannotGenerate, message: "cannot be read"},
		{name: "remote ref", lang: TypeScript, doc: `{` + info + `,"paths":{"/x":{"$ref":"http://169.254.169.254/latest/meta-data"}}}`, is: ErrCannotGenerate, message: "cannot be read"},
		{name: "too large", lang: Go, doc: `{"x":"` + strings.Repeat("a", MaxDocumentBytes) + `"}`, is: ErrCannotGenerate, message: "larger than 2 MiB"},
		{name: "too many operations", lang: TypeScript, doc: string(bigDocument(MaxOperations + 4)), is: ErrCannotGenerate, message: "at most 2000"},
		{name: "go: type array oapi-codegen cannot map", lang: Go, doc: `{"openapi":"3.1.0","info":{"title":"T","version":"1"},"paths":{"/x":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/X"}}}}}}}},
			"components":{"schemas":{"X":{"type":"object","properties":{"n":{"type":["number","integer"]}}}}}}`, is: ErrCannotGenerate, message: "oapi-codegen cannot generate"},
		{name: "go: a schema named like a helper", lang: Go, doc: `{` + info + `,"paths":{"/x":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/WithAPIKey"}}}}}}}},
			"components":{"schemas":{"WithAPIKey":{"type":"object","properties":{"n":{"type":"string"}}}}}}`, is: ErrCannotGenerate, message: "two Go declarations named WithAPIKey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var g Generator
			req := Request{Language: tc.lang, APISlug: "x", BaseURL: "http://x.localhost:8000/x", Document: []byte(tc.doc)}
			_, err := g.Build(context.Background(), req)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err %v, want %v", err, tc.is)
			}
			if tc.is == ErrNoDocument || tc.is == ErrUnknownLanguage {
				if !errors.Is(err, fault.ErrNotFound) {
					t.Errorf("%v does not match fault.ErrNotFound", err)
				}
				return
			}
			var ge *GenerateError
			if !errors.As(err, &ge) || !strings.Contains(ge.Message, tc.message) {
				t.Fatalf("err %v, want a GenerateError saying %q", err, tc.message)
			}
			if ge.Language != tc.lang {
				t.Errorf("language %q, want %q", ge.Language, tc.lang)
			}
			t.Logf("%s: %s", tc.name, ge.Message)
			// Cached: the same bad document is not generated again.
			builds := g.builds.Load()
			if _, err2 := g.Build(context.Background(), req); !errors.Is(err2, ErrCannotGenerate) || g.builds.Load() != builds {
				t.Errorf("second try: %v after %d builds (was %d)", err2, g.builds.Load(), builds)
			}
		})
	}
}

// TestTimeout: a generation over Generator.Timeout fails with a message, is
// not cached, and does not depend on a caller that gave up.
func TestTimeout(t *testing.T) {
	t.Parallel()
	doc := testDocuments(t)[3].doc
	g := Generator{Timeout: time.Nanosecond}
	_, err := g.Build(context.Background(), testRequest(Go, doc))
	var ge *GenerateError
	if !errors.As(err, &ge) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(ge.Message, "took longer") {
		t.Fatalf("err %v, want a timeout GenerateError", err)
	}
	if g.cache.len() != 0 {
		t.Errorf("a timeout was cached")
	}

	var g2 Generator
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g2.Build(ctx, testRequest(TypeScript, doc)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	// The build it started finishes for the next caller.
	deadline := time.Now().Add(10 * time.Second)
	for g2.cache.len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := g2.Build(context.Background(), testRequest(TypeScript, doc)); err != nil || g2.builds.Load() != 1 {
		t.Errorf("after a cancelled caller: err %v, %d builds; want the finished build", err, g2.builds.Load())
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(`{"a":1}`))
	if got, want := Version(" 1.0 ", []byte(`{"a":1}`)), "1.0+"+hex.EncodeToString(sum[:])[:12]; got != want {
		t.Errorf("Version = %q, want %q", got, want)
	}
	if got := Version("", []byte(`{}`)); !strings.HasPrefix(got, "0+") {
		t.Errorf("Version without info.version = %q, want 0+<hash>", got)
	}
	for in, want := range map[string]string{"Pet Store!": "pet-store", "--": "api", "A_b": "a-b", "": "api"} {
		if got := slugOf(in); got != want {
			t.Errorf("slugOf(%q) = %q, want %q", in, got, want)
		}
	}
	if got := fileSafe("1.0 beta/2+abc"); got != "1.0-beta-2+abc" {
		t.Errorf("fileSafe = %q", got)
	}
}

func TestBuildNeedsBaseURL(t *testing.T) {
	t.Parallel()
	var g Generator
	req := testRequest(Go, testDocuments(t)[0].doc)
	req.BaseURL = ""
	if _, err := g.Build(context.Background(), req); err == nil || errors.Is(err, ErrCannotGenerate) {
		t.Errorf("err %v, want a programming error (no base URL)", err)
	}
}
