package cowmap

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestVersions applies random edits to a Map and to a plain map side by
// side, keeping every version: each version must still hold exactly what
// it held when made, however its successors changed.
func TestVersions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var versions []Map[int]
	var wants []map[string]int
	cur, want := Map[int]{}, map[string]int{}
	for round := range 200 {
		e := cur.Edit()
		want = maps.Clone(want)
		for range rng.IntN(20) {
			k := fmt.Sprintf("k%d", rng.IntN(300))
			if rng.IntN(3) == 0 {
				e.Delete(k)
				delete(want, k)
				continue
			}
			e.Set(k, round)
			want[k] = round
			if v, ok := e.Get(k); !ok || v != round {
				t.Fatalf("edit Get(%q) = %d, %v after Set", k, v, ok)
			}
		}
		cur = e.Map()
		versions, wants = append(versions, cur), append(wants, want)
	}
	for i, m := range versions {
		if m.Len() != len(wants[i]) {
			t.Fatalf("version %d: Len %d, want %d", i, m.Len(), len(wants[i]))
		}
		got := map[string]int{}
		for k, v := range m.All() {
			got[k] = v
		}
		if !maps.Equal(got, wants[i]) {
			t.Fatalf("version %d changed: %v, want %v", i, got, wants[i])
		}
		for k, v := range wants[i] {
			if g, ok := m.GetBytes([]byte(k)); !ok || g != v {
				t.Fatalf("version %d: GetBytes(%q) = %d, %v, want %d", i, k, g, ok, v)
			}
		}
		if _, ok := m.Get("absent"); ok {
			t.Fatalf("version %d has a key never set", i)
		}
	}
}

// TestEmptyShardRefilled deletes every key of a shard and sets one again in
// the same edit.
func TestEmptyShardRefilled(t *testing.T) {
	e := Map[string]{}.Edit()
	e.Set("a", "1")
	e.Delete("a")
	e.Delete("a")
	e.Set("a", "2")
	m := e.Map()
	if v, ok := m.Get("a"); !ok || v != "2" || m.Len() != 1 {
		t.Fatalf("Get(a) = %q, %v, Len %d", v, ok, m.Len())
	}
	var zero Map[string]
	if _, ok := zero.GetBytes([]byte("a")); ok || zero.Len() != 0 {
		t.Fatal("the zero Map is not empty")
	}
}

// BenchmarkEdit is the cost of one change to a map of n keys: an edit that
// sets one key, which copies the shard table and one shard, not the map.
func BenchmarkEdit(b *testing.B) {
	for _, n := range []int{10, 1000, 10000, 100000} {
		e := Map[int]{}.Edit()
		keys := make([]string, n)
		for i := range n {
			keys[i] = fmt.Sprintf("tenant-%d.example.com", i)
			e.Set(keys[i], i)
		}
		m := e.Map()
		b.Run(fmt.Sprint("keys=", n), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				e := m.Edit()
				e.Set(keys[i%n], i)
				m = e.Map()
			}
		})
	}
}

// BenchmarkGetBytes is a lookup by a request's Host header bytes.
func BenchmarkGetBytes(b *testing.B) {
	e := Map[int]{}.Edit()
	for i := range 10000 {
		e.Set(fmt.Sprintf("tenant-%d.example.com", i), i)
	}
	m := e.Map()
	k := []byte("tenant-4242.example.com")
	for b.Loop() {
		if _, ok := m.GetBytes(k); !ok {
			b.Fatal("missing")
		}
	}
}
