package sdk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tollgate/tollgate/services/fault"
)

// Language names the kind of SDK to build.
type Language string

// The languages Build knows. They are also the last path segment of the
// portal's download routes (GET /api/apis/{id}/sdk/go, .../sdk/typescript).
const (
	Go         Language = "go"
	TypeScript Language = "typescript"
)

// Languages lists every language Build accepts, in the order a portal shows them.
var Languages = []Language{Go, TypeScript}

// Limits on the work one document may cause. A document stored by the
// catalog is already within the first two; the third bounds what a small
// document full of schemas could still cost.
const (
	MaxDocumentBytes = 2 << 20
	MaxOperations    = 2000
	MaxSchemas       = 10000
)

// Defaults for the zero fields of Generator.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultCacheEntries = 128
	DefaultCacheBytes   = 64 << 20
)

// ErrNoDocument means the API has no OpenAPI document, so there is no SDK to
// build. It matches fault.ErrNotFound, which the HTTP layer answers with 404.
var ErrNoDocument = fmt.Errorf("the API has no OpenAPI document: %w", fault.ErrNotFound)

// ErrUnknownLanguage means Build was asked for a language it does not know.
// It matches fault.ErrNotFound (a download route for it does not exist).
var ErrUnknownLanguage = fmt.Errorf("no SDK for this language: %w", fault.ErrNotFound)

// ErrCannotGenerate matches every GenerateError with errors.Is.
var ErrCannotGenerate = errors.New("cannot generate sdk")

// GenerateError means the API's document cannot be turned into an SDK: it is
// not a valid OpenAPI 3 document, it is over a limit, the generator rejects
// something in it, or generation took too long. The same document gives the
// same error again (it is cached like an artifact), except for a timeout.
type GenerateError struct {
	Language Language
	// Message says what is wrong in terms of the document; it is safe to
	// show to the tenant and to developers (no paths, no stack).
	Message string
	// Err is the underlying cause, for logs.
	Err error
}

func (e *GenerateError) Error() string {
	if e.Err == nil || strings.Contains(e.Message, e.Err.Error()) {
		return fmt.Sprintf("generate %s sdk: %s", e.Language, e.Message)
	}
	return fmt.Sprintf("generate %s sdk: %s: %v", e.Language, e.Message, e.Err)
}

func (e *GenerateError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCannotGenerate) match every GenerateError.
func (e *GenerateError) Is(target error) bool { return target == ErrCannotGenerate }

// Request is what one SDK is built from.
type Request struct {
	Language Language
	// APIID identifies the API; it is part of the cache key only.
	APIID string
	// APISlug names the SDK: the zip file, the Go module and package, the
	// npm package. Empty means "api".
	APISlug string
	// APIName is the API's display name, used in READMEs and comments.
	APIName string
	// TenantSlug is part of the Go module path and the npm scope.
	TenantSlug string
	// BaseURL is the API's gateway base URL (for example
	// http://acme.localhost:8000/pets): the SDK's default server. Required.
	BaseURL string
	// Document is the API's stored OpenAPI 3 document (JSON; YAML is
	// accepted too). Empty means the API has none: Build returns
	// ErrNoDocument.
	Document []byte
}

// Artifact is a built SDK: a zip archive and what a download answer needs.
type Artifact struct {
	Language Language
	// FileName is the zip's name: <api-slug>-<language>-sdk-<version>.zip,
	// with characters outside [A-Za-z0-9._+-] of the version replaced.
	FileName string
	// Version is the document's info.version, "+", and the first 12 hex
	// digits of the SHA-256 of its canonical form (see Version).
	Version string
	// SHA256 is the hex SHA-256 of Zip, for an X-Checksum-SHA256 header, an
	// ETag, and the checksum file (ChecksumFile).
	SHA256 string
	// Zip is the archive. Artifacts are cached and shared: do not modify it.
	Zip []byte
}

// ChecksumFile returns the content of a CHECKSUM.sha256 file for the zip, in
// the format `sha256sum -c` reads.
func (a Artifact) ChecksumFile() string {
	return a.SHA256 + "  " + a.FileName + "\n"
}

// Generator builds SDKs and keeps the most recent ones in memory. Its zero
// value is ready to use; it is safe for concurrent use. Concurrent Builds of
// the same request run once and share the result.
type Generator struct {
	// Timeout bounds one generation. Zero means DefaultTimeout. A build is
	// not tied to the context of the first caller, so a download cancelled
	// by its client does not fail the others waiting for the same SDK.
	Timeout time.Duration
	// CacheEntries bounds the number of cached artifacts (and generation
	// errors). Zero means DefaultCacheEntries; negative turns caching off.
	CacheEntries int
	// CacheBytes bounds the total size of the cached zips. Zero means
	// DefaultCacheBytes.
	CacheBytes int64

	once   sync.Once
	cache  *lru
	group  singleflight.Group
	builds atomic.Int64 // generations started, for tests
}

func (g *Generator) init() {
	g.once.Do(func() {
		entries, size := g.CacheEntries, g.CacheBytes
		if entries == 0 {
			entries = DefaultCacheEntries
		}
		if size <= 0 {
			size = DefaultCacheBytes
		}
		g.cache = newLRU(entries, size)
	})
}

func (g *Generator) timeout() time.Duration {
	if g.Timeout > 0 {
		return g.Timeout
	}
	return DefaultTimeout
}

// Build returns the SDK of req.Language for req.Document, from the cache when
// an identical request was built before. Errors: ErrNoDocument,
// ErrUnknownLanguage, a *GenerateError (see ErrCannotGenerate), or the
// caller's context error.
func (g *Generator) Build(ctx context.Context, req Request) (Artifact, error) {
	g.init()
	if req.Language != Go && req.Language != TypeScript {
		return Artifact{}, fmt.Errorf("%q: %w", req.Language, ErrUnknownLanguage)
	}
	if len(bytes.TrimSpace(req.Document)) == 0 {
		return Artifact{}, ErrNoDocument
	}
	if req.BaseURL == "" {
		return Artifact{}, errors.New("build sdk: the request has no base URL")
	}
	if len(req.Document) > MaxDocumentBytes {
		return Artifact{}, &GenerateError{Language: req.Language,
			Message: fmt.Sprintf("the OpenAPI document is larger than %d MiB", MaxDocumentBytes>>20)}
	}
	key := cacheKey(req)
	if e, ok := g.cache.get(key); ok {
		return e.artifact, e.err
	}
	ch := g.group.DoChan(key, func() (any, error) {
		// Another flight may have finished between the lookup and now.
		if e, ok := g.cache.get(key); ok {
			return e.artifact, e.err
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout())
		defer cancel()
		a, err := g.build(bctx, req)
		var ge *GenerateError
		if err == nil || (errors.As(err, &ge) && !errors.Is(err, context.DeadlineExceeded)) {
			g.cache.add(key, cacheEntry{artifact: a, err: err})
		}
		return a, err
	})
	select {
	case <-ctx.Done():
		return Artifact{}, fmt.Errorf("build %s sdk: %w", req.Language, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return Artifact{}, r.Err
		}
		return r.Val.(Artifact), nil
	}
}

// cacheKey names everything that changes the output: the language, the API,
// the document (by a hash of its exact bytes), the base URL and the names
// that appear in the SDK.
func cacheKey(req Request) string {
	h := sha256.New()
	for _, s := range []string{string(req.Language), req.APIID, req.TenantSlug, req.APISlug, req.APIName, req.BaseURL} {
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	h.Write(req.Document)
	return hex.EncodeToString(h.Sum(nil))
}

// build generates in a goroutine so that ctx's deadline bounds the caller's
// wait even though the generators cannot be interrupted; the input limits
// bound how long such a goroutine can outlive it.
func (g *Generator) build(ctx context.Context, req Request) (Artifact, error) {
	g.builds.Add(1)
	type result struct {
		a   Artifact
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: &GenerateError{Language: req.Language,
					Message: "the generator failed on this document",
					Err:     fmt.Errorf("panic: %v\n%s", p, debug.Stack())}}
			}
		}()
		a, err := generate(ctx, req)
		done <- result{a, err}
	}()
	select {
	case <-ctx.Done():
		return Artifact{}, &GenerateError{Language: req.Language,
			Message: fmt.Sprintf("generating the SDK took longer than %v", g.timeout()), Err: ctx.Err()}
	case r := <-done:
		return r.a, r.err
	}
}

// generate builds the archive of one request.
func generate(ctx context.Context, req Request) (Artifact, error) {
	doc, err := loadDocument(ctx, req.Document)
	if err != nil {
		return Artifact{}, asGenerateError(req.Language, err)
	}
	var files []file
	switch req.Language {
	case Go:
		files, err = goSDK(ctx, req, doc)
	case TypeScript:
		files, err = typeScriptSDK(req, doc)
	}
	if err != nil {
		return Artifact{}, asGenerateError(req.Language, err)
	}
	slug := slugOf(req.APISlug)
	root := slug + "-" + string(req.Language) + "-sdk"
	zip, err := archive(root, files)
	if err != nil {
		return Artifact{}, fmt.Errorf("build %s sdk archive: %w", req.Language, err)
	}
	sum := sha256.Sum256(zip)
	return Artifact{
		Language: req.Language,
		FileName: root + "-" + fileSafe(doc.version) + ".zip",
		Version:  doc.version,
		SHA256:   hex.EncodeToString(sum[:]),
		Zip:      zip,
	}, nil
}

// asGenerateError gives err the request's language, or wraps it as a
// GenerateError with a generic message when it is not one.
func asGenerateError(lang Language, err error) error {
	var ge *GenerateError
	if errors.As(err, &ge) {
		ge.Language = lang
		return ge
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	return &GenerateError{Language: lang, Message: "the SDK cannot be generated from this document", Err: err}
}
