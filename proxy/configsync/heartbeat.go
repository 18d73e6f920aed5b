package configsync

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// beat is the state of the worker's config heartbeat: the capability it
// speaks and the index sequence it has read, for the control plane (how
// many workers cannot serve a tenant's shard; when a superseded shard is
// no longer needed).
type beat struct {
	at  time.Time // last written
	seq int64     // sequence written then
}

// heartbeat writes the config heartbeat every proxycfg.ConfigBeatInterval,
// and when the index sequence moved (at most once a second).
func (s *Syncer[T]) heartbeat(ctx context.Context) {
	if s.opts.WorkerID == "" || s.cur.Load() == nil {
		return
	}
	now := time.Now()
	since := now.Sub(s.beat.at)
	if since < proxycfg.ConfigBeatInterval && (s.beat.seq == s.seq || since < time.Second) {
		return
	}
	raw, err := json.Marshal(proxycfg.ConfigWorkerBeat{Capability: s.opts.Capability, Seq: s.seq, At: now.UTC()})
	if err != nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	// One transaction (both keys share a slot): a reader never sees the
	// registry's field without the heartbeat.
	pipe := s.opts.Redis.TxPipeline()
	pipe.HSet(rctx, s.opts.Keys.ConfigWorkers(), s.opts.WorkerID, strconv.FormatInt(now.UnixMilli(), 10))
	pipe.Set(rctx, s.opts.Keys.ConfigWorkerBeat(s.opts.WorkerID), raw, proxycfg.ConfigBeatTTL)
	if _, err := pipe.Exec(rctx); err != nil {
		s.redisFailed(ctx, err)
		return
	}
	s.beat = beat{at: now, seq: s.seq}
}

// stopBeat withdraws the heartbeat of a worker that stops.
func (s *Syncer[T]) stopBeat() {
	if s.opts.WorkerID == "" || s.beat.at.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := s.opts.Redis.Pipeline()
	pipe.Del(ctx, s.opts.Keys.ConfigWorkerBeat(s.opts.WorkerID))
	pipe.HDel(ctx, s.opts.Keys.ConfigWorkers(), s.opts.WorkerID)
	_, _ = pipe.Exec(ctx)
}
