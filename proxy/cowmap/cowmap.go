// Package cowmap provides Map, a string-keyed map whose versions share their
// storage: a new version copies only the shards that its changes touch.
//
// The worker's runtime maps host names and tenant ids to tenants, and a
// config change of one tenant makes a new runtime beside the live one
// (proxy/pipeline's Composer). With plain maps each change copied both maps
// whole, a cost (and garbage for the collector to mark past) in proportion
// to the platform's tenants rather than to the change: at 10,000 tenants it
// was most of a worker's CPU per change. A Map is split into shards by a
// hash of the key; an Edit copies the table of shards (a pointer each) and
// then each shard it changes, once.
package cowmap

import (
	"hash/maphash"
	"iter"
)

const (
	shardBits = 10
	shards    = 1 << shardBits
)

// seed is the process's hash seed (keys are hashed alike in every Map).
var seed = maphash.MakeSeed()

func shardOf(h uint64) int { return int(h >> (64 - shardBits)) }

// Map is one version of a map from strings to V. The zero value is an empty
// map. A Map is never changed once made: Edit makes the next version. It is
// safe for concurrent reads.
type Map[V any] struct {
	t *table[V]
}

type table[V any] struct {
	shards [shards]map[string]V // nil: empty
	n      int
}

// Len is the number of keys.
func (m Map[V]) Len() int {
	if m.t == nil {
		return 0
	}
	return m.t.n
}

// Get returns k's value.
func (m Map[V]) Get(k string) (v V, ok bool) {
	if m.t == nil {
		return v, false
	}
	v, ok = m.t.shards[shardOf(maphash.String(seed, k))][k]
	return v, ok
}

// GetBytes returns the value of the key k spells, without allocating.
func (m Map[V]) GetBytes(k []byte) (v V, ok bool) {
	if m.t == nil {
		return v, false
	}
	v, ok = m.t.shards[shardOf(maphash.Bytes(seed, k))][string(k)]
	return v, ok
}

// All yields every key and value, in no order.
func (m Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		if m.t == nil {
			return
		}
		for _, s := range m.t.shards {
			for k, v := range s {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// Edit makes the next version of a Map: it starts as the Map it was made
// from, which it never changes. It is used by one goroutine.
type Edit[V any] struct {
	t     *table[V]
	owned [shards / 64]uint64 // shards copied into t (t's own to change)
}

// Edit starts the next version of m. Its cost is a copy of the shard
// table, whatever m holds; each shard a change touches is copied once.
func (m Map[V]) Edit() *Edit[V] {
	t := &table[V]{}
	if m.t != nil {
		*t = *m.t
	}
	return &Edit[V]{t: t}
}

// Get returns k's value in the version being made.
func (e *Edit[V]) Get(k string) (V, bool) { return Map[V]{e.t}.Get(k) }

// own returns shard i of the version being made, copied first unless the
// edit copied it already.
func (e *Edit[V]) own(i int) map[string]V {
	w, bit := i/64, uint64(1)<<(i%64)
	s := e.t.shards[i]
	if e.owned[w]&bit == 0 {
		c := make(map[string]V, len(s)+1)
		for k, v := range s {
			c[k] = v
		}
		s = c
		e.t.shards[i] = s
		e.owned[w] |= bit
	}
	return s
}

// Set sets k's value.
func (e *Edit[V]) Set(k string, v V) {
	s := e.own(shardOf(maphash.String(seed, k)))
	if _, ok := s[k]; !ok {
		e.t.n++
	}
	s[k] = v
}

// Delete removes k.
func (e *Edit[V]) Delete(k string) {
	i := shardOf(maphash.String(seed, k))
	if _, ok := e.t.shards[i][k]; !ok {
		return
	}
	delete(e.own(i), k)
	e.t.n--
}

// Map ends the edit and returns the new version; the Edit must not be used
// after.
func (e *Edit[V]) Map() Map[V] {
	t := e.t
	e.t = nil
	return Map[V]{t}
}
