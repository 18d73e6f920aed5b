package keyauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

var secret = []byte("test-secret")

func TestCredential(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, auth, apiKey, want string
		inAuth                   bool
	}{
		{name: "bearer", auth: "Bearer k1", want: "k1", inAuth: true},
		{name: "bearer lower case", auth: "bearer  k1 ", want: "k1", inAuth: true},
		{name: "x-api-key", apiKey: "k2", want: "k2"},
		{name: "x-api-key wins", auth: "Bearer user-token", apiKey: "k2", want: "k2"},
		{name: "basic ignored", auth: "Basic abc"},
		{name: "empty bearer", auth: "Bearer "},
		{name: "none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, inAuth := Credential([]byte(tc.auth), []byte(tc.apiKey))
			if string(k) != tc.want || inAuth != tc.inAuth {
				t.Fatalf("Credential = %q, %v; want %q, %v", k, inAuth, tc.want, tc.inAuth)
			}
		})
	}
}

func TestDigestMatchesContract(t *testing.T) {
	rdb, keys := testredis.New(t)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "tg_abc", "a much longer key with spaces and ünïcode"} {
		if got, want := s.Digest([]byte(k)).String(), proxycfg.Digest(secret, k); got != want {
			t.Fatalf("Digest(%q) = %s, want %s", k, got, want)
		}
	}
	k := []byte("tg_abc")
	if n := testing.AllocsPerRun(100, func() { s.Digest(k) }); n != 0 && !raceEnabled {
		t.Fatalf("Digest allocates %v times", n)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		active := proxycfg.KeyRecord{ID: "k1", TenantID: "t1", PlanID: "p1", Status: proxycfg.KeyActive}
		testredis.PutKey(t, rdb, keys, secret, "good", active)
		testredis.PutKey(t, rdb, keys, secret, "revoked", proxycfg.KeyRecord{ID: "k2", Status: proxycfg.KeyRevoked})
		// Records of every other status come back whole: the pipeline decides.
		for _, r := range []proxycfg.KeyRecord{
			{ID: "k3", Status: proxycfg.KeySuspended, SubscriptionID: "s1"},
			{ID: "k4", Status: proxycfg.KeyCanceled, SubscriptionID: "s1"},
			{ID: "k5", Status: proxycfg.KeyPastDue, SubscriptionID: "s1", GraceUntil: 1234, BillingURL: "https://b.test/s1"},
			{ID: "k6", Status: "frozen"},
			{ID: "k7", Status: proxycfg.KeyActive, ExpiresAt: 1},
		} {
			testredis.PutKey(t, rdb, keys, secret, r.ID, r)
		}
		tests := []struct {
			name       string
			key        string
			wantID     string
			wantStatus string
		}{
			{name: "active", key: "good", wantID: "k1", wantStatus: proxycfg.KeyActive},
			{name: "revoked", key: "revoked"},
			{name: "unknown", key: "nope"},
			{name: "suspended", key: "k3", wantID: "k3", wantStatus: proxycfg.KeySuspended},
			{name: "canceled", key: "k4", wantID: "k4", wantStatus: proxycfg.KeyCanceled},
			{name: "past due", key: "k5", wantID: "k5", wantStatus: proxycfg.KeyPastDue},
			{name: "unknown status", key: "k6", wantID: "k6", wantStatus: "frozen"},
			{name: "expired", key: "k7", wantID: "k7", wantStatus: proxycfg.KeyActive},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				for range 2 { // miss, then cache hit
					rec, err := s.Lookup(ctx, []byte(tc.key))
					if err != nil {
						t.Fatal(err)
					}
					if got := idOf(rec); got != tc.wantID {
						t.Fatalf("Lookup(%q) id = %q, want %q", tc.key, got, tc.wantID)
					}
					if rec != nil && rec.Status != tc.wantStatus {
						t.Fatalf("Lookup(%q) status = %q, want %q", tc.key, rec.Status, tc.wantStatus)
					}
				}
			})
		}
		if rec, _ := s.Lookup(ctx, []byte("k5")); rec.GraceUntil != 1234 || rec.BillingURL != "https://b.test/s1" || rec.SubscriptionID != "s1" {
			t.Fatalf("past-due record lost fields: %+v", rec.KeyRecord)
		}

		// A changed record is served from cache until invalidated.
		testredis.PutKey(t, rdb, keys, secret, "good", proxycfg.KeyRecord{ID: "k1", Status: proxycfg.KeyRevoked})
		if rec, _ := s.Lookup(ctx, []byte("good")); idOf(rec) != "k1" {
			t.Fatal("cache entry lost before invalidation")
		}
		s.Invalidate(proxycfg.Digest(secret, "good"))
		if rec, _ := s.Lookup(ctx, []byte("good")); rec != nil {
			t.Fatalf("revoked key still resolves after invalidation: %+v", rec)
		}
	})
}

func TestSubscriptionInvalidates(t *testing.T) {
	t.Parallel()
	testredis.Each(t, func(t *testing.T, rdb redis.UniversalClient, keys proxycfg.Keys) {
		s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		waitFor(t, s.Subscribed)

		testredis.PutKey(t, rdb, keys, secret, "k", proxycfg.KeyRecord{ID: "id", TenantID: "t", Status: proxycfg.KeyActive})
		if rec, _ := s.Lookup(ctx, []byte("k")); rec == nil {
			t.Fatal("active key not found")
		}
		testredis.PutKey(t, rdb, keys, secret, "k", proxycfg.KeyRecord{ID: "id", TenantID: "t", Status: proxycfg.KeyRevoked})
		testredis.AnnounceKey(t, rdb, keys, secret, "k")
		waitFor(t, func() bool { rec, _ := s.Lookup(ctx, []byte("k")); return rec == nil })

		// The subscription is cut on the server (a restart, a failover):
		// the store subscribes again, and revokes reach it again.
		if n := testredis.KillSubscriptions(t, rdb); n == 0 {
			t.Fatal("no subscription to cut")
		}
		time.Sleep(time.Second) // noticed, resubscribed, cache purged
		waitFor(t, s.Subscribed)
		testredis.PutKey(t, rdb, keys, secret, "k2", proxycfg.KeyRecord{ID: "id2", TenantID: "t", Status: proxycfg.KeyActive})
		if rec, _ := s.Lookup(ctx, []byte("k2")); rec == nil {
			t.Fatal("active key not found after the subscription came back")
		}
		testredis.PutKey(t, rdb, keys, secret, "k2", proxycfg.KeyRecord{ID: "id2", TenantID: "t", Status: proxycfg.KeyRevoked})
		testredis.AnnounceKey(t, rdb, keys, secret, "k2")
		waitFor(t, func() bool { rec, _ := s.Lookup(ctx, []byte("k2")); return rec == nil })
	})
}

func TestRecordSubject(t *testing.T) {
	// Not parallel: it counts allocations.
	tests := []struct {
		name                        string
		rec                         proxycfg.KeyRecord
		wantKey, wantConsumer, want string
	}{
		{name: "plain key", rec: proxycfg.KeyRecord{ID: "k", ConsumerID: "c", PlanID: "p"}, wantKey: "k", wantConsumer: "c/c/p"},
		{name: "key of a subscription", rec: proxycfg.KeyRecord{ID: "k", ConsumerID: "c", PlanID: "p", SubscriptionID: "s"},
			wantKey: "s/s", wantConsumer: "c/c/p"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRecord(tc.rec)
			for _, sc := range []struct{ scope, want string }{
				{"", tc.wantKey}, {proxycfg.ScopeKey, tc.wantKey}, {proxycfg.ScopeConsumer, tc.wantConsumer},
			} {
				want := proxycfg.LimitSubject(sc.scope, tc.rec.ID, tc.rec.SubscriptionID, tc.rec.ConsumerID, tc.rec.PlanID)
				if got := r.Subject(sc.scope); got != sc.want || got != want {
					t.Fatalf("Subject(%q) = %q, want %q (LimitSubject %q)", sc.scope, got, sc.want, want)
				}
			}
			if n := testing.AllocsPerRun(100, func() { r.Subject(proxycfg.ScopeConsumer) }); n != 0 {
				t.Fatalf("Subject allocates %v times", n)
			}
		})
	}
}

// TestRedisDownServesCachedRecord: while Redis cannot be asked, an expired
// cache entry still answers (within MaxStale, TestRedisDownMaxStale),
// whatever its status, so that the pipeline keeps refusing a suspended key
// rather than answering 503.
func TestRedisDownServesCachedRecord(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	s, err := New(Options{Redis: rdb, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	for _, status := range []string{proxycfg.KeyActive, proxycfg.KeySuspended} {
		key := []byte("k-" + status)
		s.store(key, s.Digest(key), entry{rec: NewRecord(proxycfg.KeyRecord{ID: status, Status: status}), expires: time.Now().UnixNano() - 1}, s.seq.Load())
		rec, err := s.Lookup(context.Background(), key)
		if err != nil || rec == nil || rec.Status != status {
			t.Fatalf("%s: Lookup = %+v, %v; want the cached record", status, rec, err)
		}
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	s, err := New(Options{Redis: rdb, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Lookup(context.Background(), []byte("k"))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret, MaxEntries: shardCount})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		key := []byte(fmt.Sprintf("key-%d", i))
		s.store(key, s.Digest(key), entry{expires: time.Now().Add(time.Hour).UnixNano()}, s.seq.Load())
	}
	if total := s.Len(); total > shardCount {
		t.Fatalf("cache holds %d entries, bound %d", total, shardCount)
	}
	if n := len(s.byDigest); n != s.Len() {
		t.Fatalf("digest index holds %d entries, cache %d", n, s.Len())
	}
}

func idOf(r *Record) string {
	if r == nil {
		return ""
	}
	return r.ID
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkKeyCheckWarm(b *testing.B) {
	rdb, keys := testredis.New(b)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
	if err != nil {
		b.Fatal(err)
	}
	testredis.PutKey(b, rdb, keys, secret, "tg_live_0123456789abcdef0123456789", proxycfg.KeyRecord{ID: "k", Status: proxycfg.KeyActive})
	key := []byte("tg_live_0123456789abcdef0123456789")
	ctx := context.Background()
	if rec, _ := s.Lookup(ctx, key); rec == nil {
		b.Fatal("key not found")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rec, _ := s.Lookup(ctx, key); rec == nil {
				b.Fatal("miss")
			}
		}
	})
}

// TestRedisDownMaxStale is the regression test of a cached key staying
// valid for ever while Redis is down: past MaxStale beyond its TTL the
// record no longer answers, and the key is unavailable (503), not served.
func TestRedisDownMaxStale(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	now := time.Now().UnixNano()
	tests := []struct {
		name      string
		maxStale  time.Duration
		expiredAt int64 // when the cache entry's TTL ran out
		served    bool
	}{
		{name: "within the default", expiredAt: now - int64(time.Minute), served: true},
		{name: "past the default", expiredAt: now - int64(DefaultMaxStale) - int64(time.Second)},
		{name: "within a set limit", maxStale: time.Hour, expiredAt: now - int64(30*time.Minute), served: true},
		{name: "past a set limit", maxStale: time.Minute, expiredAt: now - int64(2*time.Minute)},
		{name: "no stale answers", maxStale: -1, expiredAt: now - int64(time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := New(Options{Redis: rdb, Secret: secret, MaxStale: tc.maxStale})
			if err != nil {
				t.Fatal(err)
			}
			key := []byte("k")
			s.store(key, s.Digest(key), entry{rec: NewRecord(proxycfg.KeyRecord{ID: "k", Status: proxycfg.KeyActive}), expires: tc.expiredAt}, s.seq.Load())
			rec, err := s.Lookup(context.Background(), key)
			if tc.served {
				if err != nil || rec == nil {
					t.Fatalf("Lookup = %v, %v; want the cached record", rec, err)
				}
				return
			}
			if !errors.Is(err, ErrUnavailable) || rec != nil {
				t.Fatalf("Lookup = %v, %v; want ErrUnavailable", rec, err)
			}
		})
	}
}

// FuzzCredential checks credential extraction against a plain reading of
// its rules: X-API-Key if not blank, else the token of "Bearer <token>"
// (scheme case-insensitive), trimmed; the result aliases the input.
func FuzzCredential(f *testing.F) {
	for _, s := range [][2]string{
		{"Bearer k1", ""}, {"bearer  k1 ", ""}, {"", "k2"}, {"Bearer user", "k2"}, {"Basic abc", ""},
		{"Bearer ", ""}, {"BEARER\tk", ""}, {" Bearer k ", " "}, {"Bearerk", ""}, {"Bearer \u00a0k\u00a0", ""},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	lower := func(b []byte) string {
		out := []byte(string(b))
		for i, c := range out {
			if 'A' <= c && c <= 'Z' {
				out[i] = c + 'a' - 'A'
			}
		}
		return string(out)
	}
	f.Fuzz(func(t *testing.T, auth, apiKey []byte) {
		key, inAuth := Credential(auth, apiKey)
		var want []byte
		wantInAuth := false
		if k := bytes.TrimSpace(apiKey); len(k) > 0 {
			want = k
		} else if a := bytes.TrimSpace(auth); len(a) > 7 && lower(a[:7]) == "bearer " {
			if k := bytes.TrimSpace(a[7:]); len(k) > 0 {
				want, wantInAuth = k, true
			}
		}
		if !bytes.Equal(key, want) || inAuth != wantInAuth || (key == nil) != (want == nil) {
			t.Fatalf("Credential(%q, %q) = %q, %v; want %q, %v", auth, apiKey, key, inAuth, want, wantInAuth)
		}
		if key != nil {
			src := apiKey
			if inAuth {
				src = auth
			}
			if !aliases(key, src) {
				t.Fatalf("Credential(%q, %q) = %q copies its input", auth, apiKey, key)
			}
		}
	})
}

// aliases reports whether b starts within the memory of src.
func aliases(b, src []byte) bool {
	for i := range src {
		if &src[i] == &b[0] {
			return true
		}
	}
	return false
}

// TestMarkStaleKeepsFallback: after the key channel resubscribes (messages
// may have been missed), cached records are looked up again, but while Redis
// cannot answer yet a key in use is still served from its record, as in any
// outage, instead of failing with 503.
func TestMarkStaleKeepsFallback(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	s, err := New(Options{Redis: rdb, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("k-live")
	s.store(key, s.Digest(key), entry{rec: NewRecord(proxycfg.KeyRecord{ID: "live", Status: proxycfg.KeyActive}),
		expires: time.Now().Add(time.Minute).UnixNano()}, s.seq.Load())
	unknown := []byte("k-unknown")
	s.store(unknown, s.Digest(unknown), entry{expires: time.Now().Add(time.Minute).UnixNano()}, s.seq.Load())
	s.MarkStale()
	if _, ok := s.shards[s.keyHash(unknown)%shardCount].m[s.keyHash(unknown)]; ok {
		t.Fatal("a negative entry survived: a key created meanwhile would stay unknown")
	}
	rec, err := s.Lookup(context.Background(), key)
	if err != nil || rec == nil || rec.ID != "live" {
		t.Fatalf("Lookup after MarkStale with Redis down = %+v, %v; want the stale record", rec, err)
	}
	e := s.shards[s.keyHash(key)%shardCount].m[s.keyHash(key)]
	if e.expires > time.Now().UnixNano() {
		t.Fatal("the record is still fresh: a revoke missed meanwhile would not be seen")
	}
}

// TestCacheCollisionNeverAuthenticates: the cache finds entries by a 64-bit
// hash of the presented key, but a hit needs the key itself: an entry found
// under a key's hash that holds another key answers nothing, and the key is
// looked up for itself.
func TestCacheCollisionNeverAuthenticates(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testredis.PutKey(t, rdb, keys, secret, "victim", proxycfg.KeyRecord{ID: "victim", Status: proxycfg.KeyActive})
	tests := []struct {
		name, presented, wantID string
	}{
		{name: "unknown key", presented: "attacker"},
		{name: "same length", presented: "victin"},
		{name: "prefix", presented: "victi"},
		{name: "empty", presented: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Forge the collision: the victim's entry under the hash of
			// the presented key.
			h := s.keyHash([]byte(tc.presented))
			sh := &s.shards[h%shardCount]
			sh.mu.Lock()
			sh.m[h] = entry{key: []byte("victim"), digest: s.Digest([]byte("victim")),
				rec: NewRecord(proxycfg.KeyRecord{ID: "victim", Status: proxycfg.KeyActive}), expires: time.Now().Add(time.Hour).UnixNano()}
			sh.mu.Unlock()
			rec, err := s.Lookup(ctx, []byte(tc.presented))
			if err != nil || idOf(rec) != tc.wantID {
				t.Fatalf("Lookup(%q) = %q, %v; want %q: a colliding entry answered", tc.presented, idOf(rec), err, tc.wantID)
			}
			// The key's own answer replaced the forged entry.
			sh.mu.RLock()
			e := sh.m[h]
			sh.mu.RUnlock()
			if string(e.key) != tc.presented || e.rec != nil {
				t.Fatalf("entry after the lookup holds %q, %v", e.key, e.rec)
			}
		})
	}
	if rec, _ := s.Lookup(ctx, []byte("victim")); idOf(rec) != "victim" {
		t.Fatal("the victim's own key no longer resolves")
	}
}

// TestCacheSweepWipesKeys: entries that can no longer answer (past their TTL
// and MaxStale) leave the cache at the next sweep, and the copy of the key
// they held is overwritten; so do invalidated and purged ones.
func TestCacheSweepWipesKeys(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret, MaxStale: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	held := func(key string) []byte {
		h := s.keyHash([]byte(key))
		sh := &s.shards[h%shardCount]
		sh.mu.RLock()
		defer sh.mu.RUnlock()
		e, ok := sh.m[h]
		if !ok {
			return nil
		}
		return e.key
	}
	rec := NewRecord(proxycfg.KeyRecord{ID: "k", Status: proxycfg.KeyActive})
	s.store([]byte("fresh"), s.Digest([]byte("fresh")), entry{rec: rec, expires: now + int64(time.Minute)}, s.seq.Load())
	s.store([]byte("stale"), s.Digest([]byte("stale")), entry{rec: rec, expires: now - int64(30*time.Second)}, s.seq.Load())
	s.store([]byte("gone"), s.Digest([]byte("gone")), entry{rec: rec, expires: now - int64(2*time.Minute)}, s.seq.Load())
	gone := held("gone")
	s.sweep(now)
	if held("fresh") == nil || held("stale") == nil {
		t.Fatal("the sweep dropped an entry that can still answer")
	}
	if held("gone") != nil {
		t.Fatal("an entry past MaxStale survived the sweep")
	}
	if !bytes.Equal(gone, make([]byte, len(gone))) {
		t.Fatalf("the swept entry's key was left in memory: %q", gone)
	}
	stale := held("stale")
	s.Invalidate(s.Digest([]byte("stale")).String())
	if held("stale") != nil || !bytes.Equal(stale, make([]byte, len(stale))) {
		t.Fatal("an invalidated entry's key was left in memory")
	}
	fresh := held("fresh")
	s.Purge()
	if s.Len() != 0 || len(s.byDigest) != 0 || !bytes.Equal(fresh, make([]byte, len(fresh))) {
		t.Fatal("a purged entry's key was left in memory")
	}
}

// TestLookupHitNoAlloc: a cached key costs no allocation (and no digest).
func TestLookupHitNoAlloc(t *testing.T) {
	rdb, keys := testredis.New(t)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	testredis.PutKey(t, rdb, keys, secret, "k", proxycfg.KeyRecord{ID: "k", Status: proxycfg.KeyActive})
	ctx, key, now := context.Background(), []byte("k"), time.Now()
	if rec, _ := s.LookupAt(ctx, key, now); rec == nil {
		t.Fatal("key not found")
	}
	if n := testing.AllocsPerRun(100, func() { s.LookupAt(ctx, key, now) }); n != 0 {
		t.Fatalf("a cache hit allocates %v times", n)
	}
}

// TestSetKeyPurges: entries looked up under another digest key are dropped
// when the key changes.
func TestSetKeyPurges(t *testing.T) {
	t.Parallel()
	rdb, keys := testredis.New(t)
	s, err := New(Options{Redis: rdb, Keys: keys, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	testredis.PutKey(t, rdb, keys, secret, "k", proxycfg.KeyRecord{ID: "k", Status: proxycfg.KeyActive})
	if rec, _ := s.Lookup(ctx, []byte("k")); idOf(rec) != "k" {
		t.Fatal("key not found")
	}
	s.SetKey([]byte("another-digest-key"))
	if rec, _ := s.Lookup(ctx, []byte("k")); rec != nil {
		t.Fatal("a record looked up under the old digest key still answers")
	}
}
