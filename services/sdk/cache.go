package sdk

import (
	"container/list"
	"sync"
)

// cacheEntry is a built artifact or the generation error of a document that
// cannot be generated (so a bad document is not regenerated per download).
type cacheEntry struct {
	artifact Artifact
	err      error
}

// lru is a least-recently-used cache bounded by entry count and zip bytes.
// A nil *lru (caching off) misses every lookup and keeps nothing.
type lru struct {
	mu         sync.Mutex
	maxEntries int
	maxBytes   int64
	bytes      int64
	order      *list.List // front: most recently used; values are *lruItem
	items      map[string]*list.Element
}

type lruItem struct {
	key   string
	entry cacheEntry
}

func newLRU(maxEntries int, maxBytes int64) *lru {
	if maxEntries < 0 {
		return nil
	}
	return &lru{maxEntries: maxEntries, maxBytes: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

func (c *lru) get(key string) (cacheEntry, bool) {
	if c == nil {
		return cacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return cacheEntry{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruItem).entry, true
}

// add keeps e under key and evicts the least recently used entries beyond
// the bounds. An entry larger than the byte bound is not kept at all.
func (c *lru) add(key string, e cacheEntry) {
	if c == nil {
		return
	}
	size := int64(len(e.artifact.Zip))
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.bytes -= int64(len(el.Value.(*lruItem).entry.artifact.Zip))
		c.order.Remove(el)
		delete(c.items, key)
	}
	c.items[key] = c.order.PushFront(&lruItem{key: key, entry: e})
	c.bytes += size
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		el := c.order.Back()
		it := el.Value.(*lruItem)
		c.order.Remove(el)
		delete(c.items, it.key)
		c.bytes -= int64(len(it.entry.artifact.Zip))
	}
}

// len returns the number of cached entries.
func (c *lru) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
