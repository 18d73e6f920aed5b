package docs

import (
	"container/list"
	"crypto/sha256"
	"errors"
	"sync"
)

var errBuildFailed = errors.New("docs: building the reference failed")

// DefaultCacheSize is the number of entries a Cache keeps when NewCache is
// given no size. A reference of a 200-operation document takes a few MiB.
const DefaultCacheSize = 64

// Cache keeps built references and summaries by document hash, so page
// views do not parse a document again. It is bounded (least recently used
// entries go first) and safe for concurrent use; concurrent requests for an
// entry being built wait for that one build. A document that fails to build
// keeps failing from the cache: the same bytes give the same error.
type Cache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // of *cacheEntry, most recently used first
	m   map[string]*list.Element
}

type cacheEntry struct {
	key   string
	ready chan struct{} // closed when the fields below are set
	ref   *Reference
	sum   Summary
	err   error
}

// NewCache returns a cache of at most size entries (DefaultCacheSize if
// size <= 0). References and summaries count alike.
func NewCache(size int) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	return &Cache{max: size, ll: list.New(), m: map[string]*list.Element{}}
}

// Reference returns the reference of doc for opts, building it on the first
// call for the document, base URL and auth mode; the key only changes the
// snippets, so every developer shares one entry (see Reference.WithKey).
// The result must not be modified.
func (c *Cache) Reference(doc []byte, opts Options) (*Reference, error) {
	sum := sha256.Sum256(doc)
	key := "r\x00" + string(sum[:]) + "\x00" + opts.Auth + "\x00" + opts.BaseURL
	e := c.entry(key, func(e *cacheEntry) {
		e.ref, e.err = Build(doc, Options{BaseURL: opts.BaseURL, Auth: opts.Auth})
	})
	if e.err != nil {
		return nil, e.err
	}
	if opts.Key == "" {
		return e.ref, nil
	}
	return e.ref.WithKey(opts.Key), nil
}

// Summary returns the summary of doc (see Summarize), cached.
func (c *Cache) Summary(doc []byte) (Summary, error) {
	sum := sha256.Sum256(doc)
	e := c.entry("s\x00"+string(sum[:]), func(e *cacheEntry) { e.sum, e.err = Summarize(doc) })
	return e.sum, e.err
}

// Len reports the number of entries.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

func (c *Cache) entry(key string, build func(*cacheEntry)) *cacheEntry {
	c.mu.Lock()
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		c.mu.Unlock()
		e := el.Value.(*cacheEntry)
		<-e.ready
		return e
	}
	e := &cacheEntry{key: key, ready: make(chan struct{})}
	c.m[key] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
	c.mu.Unlock()
	defer close(e.ready)
	e.err = errBuildFailed // until build returns: waiters of a panicked build see it
	build(e)
	return e
}
