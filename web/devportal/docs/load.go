package docs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/getkin/kin-openapi/openapi3"
)

// load parses a document with kin-openapi's loader, external references
// refused (IsExternalRefsAllowed false, as at import).
func load(doc []byte) (*openapi3.T, error) {
	if len(doc) > MaxDocumentBytes {
		return nil, fmt.Errorf("load openapi document: %d bytes is more than %d", len(doc), MaxDocumentBytes)
	}
	newLoader := func() *openapi3.Loader {
		l := openapi3.NewLoader()
		l.IsExternalRefsAllowed = false
		return l
	}
	var t *openapi3.T
	if d := bytes.TrimLeft(doc, " \t\r\n"); len(d) > 0 && d[0] == '{' {
		t, _ = loadJSON(newLoader(), doc) // on failure LoadFromData says why
	}
	if t == nil {
		var err error
		if t, err = newLoader().LoadFromData(doc); err != nil {
			return nil, fmt.Errorf("load openapi document: %w", err)
		}
	}
	if !strings.HasPrefix(t.OpenAPI, "3.") {
		return nil, fmt.Errorf("load openapi document: openapi %q: %w", t.OpenAPI, ErrNotOpenAPI3)
	}
	return t, nil
}

// loadJSON loads a JSON document with kin-openapi's own decoders, three
// times faster than LoadFromData on a 200-operation document: that reads
// everything as YAML first (slow on the one-line JSON the catalogue
// stores), and kin-openapi's Paths and PathItem decoders each decode their
// whole subtree once more into a generic map (for extensions). Here every
// path item's own fields and each of its operations are decoded straight
// from their bytes, in parallel, and the loader then resolves references
// as LoadFromData would. A nil document means the caller should use
// LoadFromData (the bytes are not JSON, or something failed).
func loadJSON(loader *openapi3.Loader, doc []byte) (*openapi3.T, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, err
	}
	var rawPaths map[string]json.RawMessage
	if p, ok := top["paths"]; ok && !bytes.Equal(bytes.TrimSpace(p), []byte("null")) {
		if err := json.Unmarshal(p, &rawPaths); err != nil {
			return nil, fmt.Errorf("paths: %w", err)
		}
		top["paths"] = json.RawMessage("{}")
	}
	rest, err := json.Marshal(top)
	if err != nil {
		return nil, err
	}
	var t openapi3.T
	if err := json.Unmarshal(rest, &t); err != nil {
		return nil, err
	}
	if rawPaths != nil {
		paths, err := decodePaths(rawPaths)
		if err != nil {
			return nil, err
		}
		t.Paths = paths
	}
	if err := loader.ResolveRefsIn(&t, nil); err != nil {
		return nil, err
	}
	return &t, nil
}

// splitMethods are the path item fields decoded as separate jobs.
var splitMethods = map[string]string{
	"get": http.MethodGet, "put": http.MethodPut, "post": http.MethodPost, "delete": http.MethodDelete,
	"options": http.MethodOptions, "head": http.MethodHead, "patch": http.MethodPatch, "trace": http.MethodTrace,
}

// decodePaths decodes a paths object with kin-openapi's PathItem and
// Operation decoders, every path item's fields and each of its operations
// as separate jobs run in parallel.
func decodePaths(raw map[string]json.RawMessage) (*openapi3.Paths, error) {
	type job struct {
		item   int    // index into items
		method string // "" for the path item's own fields
		data   []byte
		op     openapi3.Operation
		err    error
	}
	paths := openapi3.NewPathsWithCapacity(len(raw))
	var keys []string
	var jobs []job
	for k, v := range raw {
		if strings.HasPrefix(k, "x-") {
			var ext any
			if err := json.Unmarshal(v, &ext); err != nil {
				return nil, fmt.Errorf("paths: %w", err)
			}
			if paths.Extensions == nil {
				paths.Extensions = map[string]any{}
			}
			paths.Extensions[k] = ext
			continue
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(v, &fields); err != nil {
			return nil, fmt.Errorf("paths: %s: %w", k, err)
		}
		n := len(keys)
		keys = append(keys, k)
		for f, data := range fields {
			if m, ok := splitMethods[f]; ok {
				jobs = append(jobs, job{item: n, method: m, data: data})
				delete(fields, f)
			}
		}
		rest, err := json.Marshal(fields)
		if err != nil {
			return nil, fmt.Errorf("paths: %s: %w", k, err)
		}
		jobs = append(jobs, job{item: n, data: rest})
	}
	items := make([]openapi3.PathItem, len(keys))
	workers := min(runtime.GOMAXPROCS(0), 8, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(jobs); i = int(next.Add(1) - 1) {
				j := &jobs[i]
				if j.method == "" {
					j.err = items[j.item].UnmarshalJSON(j.data)
				} else {
					j.err = j.op.UnmarshalJSON(j.data)
				}
			}
		})
	}
	wg.Wait()
	for i := range jobs {
		if j := &jobs[i]; j.err != nil {
			return nil, fmt.Errorf("paths: %s: %w", keys[j.item], j.err)
		}
	}
	for i := range jobs {
		if j := &jobs[i]; j.method != "" {
			items[j.item].SetOperation(j.method, &j.op)
		}
	}
	for i, k := range keys {
		paths.Set(k, &items[i])
	}
	return paths, nil
}
