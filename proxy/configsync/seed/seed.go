// Package seed writes a configuration to Redis in the form the control
// plane's publisher gives it (an index, one shard per tenant, the change log
// and the announcement; see proxycfg's shard.go), for tests, benchmarks and
// tools that run workers without a control plane. It takes a whole
// proxycfg.Snapshot, or raw shards for tests of what a worker makes of bad
// ones.
package seed

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// Shard is one tenant's shard as bytes, for Shards.
type Shard struct {
	TenantID   string
	Generation int64
	// Capability goes in the index entry; 0 reads it from Raw (a raw that
	// is not JSON then gets proxycfg.CapBase).
	Capability int
	Raw        []byte
}

// Snapshot stores snap as the index at sequence snap.Generation with every
// tenant's shard at that generation; tenants of the index that snap does
// not have are removed. It does not announce it (Announce does). It
// returns the ids of the tenants it wrote.
func Snapshot(ctx context.Context, rdb redis.UniversalClient, keys proxycfg.Keys, snap *proxycfg.Snapshot) ([]string, error) {
	shards := make([]Shard, 0, len(snap.Tenants))
	keep := map[string]bool{}
	for _, t := range snap.Tenants {
		sh := proxycfg.NewShard(t, snap.Generation, snap.CompiledAt)
		raw, err := json.Marshal(sh)
		if err != nil {
			return nil, fmt.Errorf("encode shard: %w", err)
		}
		shards = append(shards, Shard{TenantID: t.ID, Generation: snap.Generation, Capability: sh.Capability, Raw: raw})
		keep[t.ID] = true
	}
	fields, err := rdb.HKeys(ctx, keys.ConfigIndex()).Result()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	var removed []string
	for _, f := range fields {
		if !strings.HasPrefix(f, "~") && !keep[f] {
			removed = append(removed, f)
		}
	}
	return Shards(ctx, rdb, keys, snap.Generation, snap.DigestVersion, shards, removed)
}

// Publish stores snap (Snapshot) and announces it.
func Publish(ctx context.Context, rdb redis.UniversalClient, keys proxycfg.Keys, snap *proxycfg.Snapshot) error {
	ids, err := Snapshot(ctx, rdb, keys, snap)
	if err != nil {
		return err
	}
	return Announce(ctx, rdb, keys, snap.Generation, ids)
}

// Shards writes shards and their index entries, removes the tenants in
// removed from the index, sets the index sequence to seq and logs the
// change under it (a log that is ahead of seq is started anew, so that a
// test may publish an older sequence). It returns the ids it changed.
func Shards(ctx context.Context, rdb redis.UniversalClient, keys proxycfg.Keys, seq int64, digest int, shards []Shard,
	removed []string) ([]string, error) {
	fields := []any{proxycfg.IndexSeqField, strconv.FormatInt(seq, 10), proxycfg.IndexDigestField, strconv.Itoa(digest)}
	var ids []string
	for _, s := range shards {
		if err := rdb.Set(ctx, keys.ConfigShard(s.TenantID, s.Generation), s.Raw, 0).Err(); err != nil {
			return nil, fmt.Errorf("write shard: %w", err)
		}
		c := s.Capability
		if c == 0 {
			var head struct {
				Capability int `json:"capability"`
			}
			_ = json.Unmarshal(s.Raw, &head)
			c = max(head.Capability, proxycfg.CapBase)
		}
		e := proxycfg.IndexEntry{Generation: s.Generation, Capability: c, Sum: proxycfg.ShardSum(s.Raw), Seq: seq}
		fields = append(fields, s.TenantID, e.String())
		ids = append(ids, s.TenantID)
	}
	if len(removed) > 0 {
		if err := rdb.HDel(ctx, keys.ConfigIndex(), removed...).Err(); err != nil {
			return nil, fmt.Errorf("remove tenants: %w", err)
		}
		ids = append(ids, removed...)
	}
	if err := rdb.HSet(ctx, keys.ConfigIndex(), fields...).Err(); err != nil {
		return nil, fmt.Errorf("write index: %w", err)
	}
	add := func() error {
		return rdb.XAdd(ctx, &redis.XAddArgs{Stream: keys.ConfigLog(), ID: strconv.FormatInt(seq, 10) + "-1",
			Values: []string{proxycfg.LogTenantsField, strings.Join(ids, ",")}}).Err()
	}
	if err := add(); err != nil {
		// The log is ahead (an older sequence published again): start it
		// anew, as a control plane restored from a backup would find it.
		if !isIDTooSmall(err) {
			return nil, fmt.Errorf("log change: %w", err)
		}
		if err := rdb.Del(ctx, keys.ConfigLog()).Err(); err != nil {
			return nil, fmt.Errorf("reset log: %w", err)
		}
		if err := add(); err != nil {
			return nil, fmt.Errorf("log change: %w", err)
		}
	}
	return ids, nil
}

// Announce publishes the message of the publish at seq that changed
// tenants.
func Announce(ctx context.Context, rdb redis.UniversalClient, keys proxycfg.Keys, seq int64, tenants []string) error {
	return rdb.Publish(ctx, keys.ConfigChannel(), proxycfg.ChannelMessage(seq, tenants)).Err()
}

func isIDTooSmall(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.Contains(re.Error(), "equal or smaller")
}
