// Package configsync keeps a worker's runtime in step with the snapshots the
// control plane publishes to Redis. At start it loads the current snapshot;
// then it follows the config channel and also polls, so that a missed
// message costs at most one poll interval. A snapshot that cannot be read,
// decoded, validated or built is rejected and the last good runtime keeps
// serving.
package configsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/proxy/outage"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// DefaultPollInterval is the poll period when Options.PollInterval is 0.
const DefaultPollInterval = time.Second

// Options configure a Syncer that builds runtimes of type T.
type Options[T any] struct {
	// Redis holds the snapshots; required.
	Redis redis.UniversalClient
	// Keys names the Redis keys and the config channel.
	Keys proxycfg.Keys
	// Build compiles a snapshot into a runtime; an error rejects the
	// snapshot. Required.
	Build func(*proxycfg.Snapshot) (*T, error)
	// Swapped, if set, runs after a new runtime went live (on the sync
	// goroutine), for example to reconcile health checks.
	Swapped func(old, cur *T)
	// PollInterval is how often Current is polled; 0 means 1s.
	PollInterval time.Duration
	// Timeout bounds each Redis read; 0 means 5s.
	Timeout time.Duration
	// Logger receives rejections and errors; nil discards.
	Logger *slog.Logger
	// CacheFile, if set, keeps the last good snapshot on local disk: it is
	// written (atomically, under a lock) after every swap, and Run loads it
	// before reaching Redis, so that a worker restarted while Redis is
	// down still serves its last good config. Redis replaces it with
	// anything newer. "" turns it off; DefaultSnapshotPath is where a
	// worker keeps it by default.
	CacheFile string
	// Rejected, if set, is called for every rejected snapshot.
	Rejected func(gen int64, err error)
	// Outage receives the outcome of every Redis call, and logs an outage
	// once instead of every failed poll; nil means a tracker of its own
	// that logs to Logger.
	Outage *outage.Tracker
}

// Syncer holds the live runtime and keeps it current.
type Syncer[T any] struct {
	opts     Options[T]
	cur      atomic.Pointer[T]
	gen      atomic.Int64
	fromDisk atomic.Bool // the live runtime came from the disk cache
	rejected int64       // last rejected generation, logged once; sync goroutine only
}

// New makes a Syncer; call Run to start it.
func New[T any](opts Options[T]) (*Syncer[T], error) {
	if opts.Redis == nil || opts.Build == nil {
		return nil, errors.New("configsync: Redis and Build are required")
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Outage == nil {
		opts.Outage = outage.New(outage.Options{Name: "redis", Logger: opts.Logger})
	}
	return &Syncer[T]{opts: opts}, nil
}

// Load returns the live runtime, nil before the first good snapshot.
func (s *Syncer[T]) Load() *T { return s.cur.Load() }

// Generation is the generation of the live runtime (0 before the first).
func (s *Syncer[T]) Generation() int64 { return s.gen.Load() }

// Ready reports whether a good snapshot has been loaded.
func (s *Syncer[T]) Ready() bool { return s.cur.Load() != nil }

// Run syncs until ctx ends; it returns nil then. Redis errors are logged and
// retried at the next message or poll.
func (s *Syncer[T]) Run(ctx context.Context) error {
	events := make(chan int64, 1)
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		s.subscribe(ctx, events)
	}()
	defer func() { <-subDone }()

	if s.opts.CacheFile != "" && s.cur.Load() == nil {
		s.loadCache()
	}
	s.poll(ctx)
	tick := time.NewTicker(s.opts.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.poll(ctx)
		case gen := <-events:
			if gen <= 0 {
				s.poll(ctx)
			} else if s.wants(gen) {
				s.load(ctx, gen)
			}
		}
	}
}

// subscribe forwards generations published on the config channel; 0 asks
// for a poll (undecodable message or a resubscription after an outage).
func (s *Syncer[T]) subscribe(ctx context.Context, events chan int64) {
	ps := s.opts.Redis.Subscribe(ctx, s.opts.Keys.ConfigChannel())
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.opts.Outage.Fail("configsync", fmt.Errorf("config channel: %w", err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		var gen int64
		s.opts.Outage.OK()
		switch m := msg.(type) {
		case *redis.Subscription:
			// Possibly a resubscription after messages were lost.
		case *redis.Message:
			gen, _ = strconv.ParseInt(strings.TrimSpace(m.Payload), 10, 64)
		default:
			continue
		}
		// Keep only the newest pending event.
		select {
		case events <- gen:
		default:
			select {
			case <-events:
			default:
			}
			select {
			case events <- gen:
			default:
			}
		}
	}
}

func (s *Syncer[T]) poll(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	gen, err := s.opts.Redis.Get(rctx, s.opts.Keys.Current()).Int64()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			s.opts.Outage.OK()
		} else if ctx.Err() == nil {
			s.opts.Outage.Fail("configsync", fmt.Errorf("config poll: %w", err))
		}
		return
	}
	s.opts.Outage.OK()
	if s.wants(gen) {
		s.load(ctx, gen)
	}
}

// load fetches, checks, builds and swaps in the snapshot of gen.
func (s *Syncer[T]) load(ctx context.Context, gen int64) {
	if gen == s.rejected {
		return
	}
	rt, raw, err := s.fetch(ctx, gen)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		var bad *rejectError
		if errors.As(err, &bad) {
			s.rejected = gen
			if s.opts.Rejected != nil {
				s.opts.Rejected(gen, err)
			}
			s.opts.Logger.Error("config snapshot rejected; the last good one keeps serving",
				"generation", gen, "serving", s.gen.Load(), "err", err)
			return
		}
		if errors.Is(err, errRedis) {
			s.opts.Outage.Fail("configsync", err)
			return
		}
		s.opts.Logger.Warn("config snapshot not loaded", "generation", gen, "err", err)
		return
	}
	s.swap(rt, gen)
	s.fromDisk.Store(false)
	if s.opts.CacheFile != "" {
		if err := writeFileAtomic(s.opts.CacheFile, raw); err != nil {
			s.opts.Logger.Warn("config snapshot not cached on disk", "file", s.opts.CacheFile, "err", err)
		}
	}
}

// wants reports whether the published generation gen should replace the
// live runtime: a newer one always; any other one while the live runtime
// came from the disk cache, because Redis, once reachable, is the truth
// (the cache may hold a generation of another deployment or from before a
// control-plane restore).
func (s *Syncer[T]) wants(gen int64) bool {
	cur := s.gen.Load()
	return gen > cur || (s.fromDisk.Load() && gen != cur)
}

func (s *Syncer[T]) swap(rt *T, gen int64) {
	old := s.cur.Swap(rt)
	s.gen.Store(gen)
	s.opts.Logger.Info("config snapshot live", "generation", gen)
	if s.opts.Swapped != nil {
		s.opts.Swapped(old, rt)
	}
}

// errRedis marks a snapshot that could not be read because Redis did not
// answer.
var errRedis = errors.New("redis unreachable")

// rejectError marks a snapshot that is readable but bad; it is not retried.
type rejectError struct{ err error }

func (e *rejectError) Error() string { return e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

func (s *Syncer[T]) fetch(ctx context.Context, gen int64) (*T, []byte, error) {
	rctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	raw, err := s.opts.Redis.Get(rctx, s.opts.Keys.Snapshot(gen)).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, nil, fmt.Errorf("snapshot %d missing", gen)
		}
		return nil, nil, fmt.Errorf("read snapshot %d: %w: %w", gen, errRedis, err)
	}
	rt, err := s.decode(raw, gen)
	return rt, raw, err
}

// decode checks and builds a snapshot's JSON; gen 0 accepts any generation.
func (s *Syncer[T]) decode(raw []byte, gen int64) (*T, error) {
	var snap proxycfg.Snapshot
	if err := json.Unmarshal(raw, &snap); err != nil {
		return nil, &rejectError{fmt.Errorf("decode snapshot %d: %w", gen, err)}
	}
	if gen != 0 && snap.Generation != gen {
		return nil, &rejectError{fmt.Errorf("snapshot under generation %d says generation %d", gen, snap.Generation)}
	}
	if err := snap.Validate(); err != nil {
		return nil, &rejectError{fmt.Errorf("validate snapshot %d: %w", snap.Generation, err)}
	}
	rt, err := s.opts.Build(&snap)
	if err != nil {
		return nil, &rejectError{fmt.Errorf("build snapshot %d: %w", snap.Generation, err)}
	}
	return rt, nil
}

// loadCache swaps in the snapshot kept on disk, if there is a good one.
func (s *Syncer[T]) loadCache() {
	raw, err := readFileLocked(s.opts.CacheFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.opts.Logger.Warn("config snapshot cache unreadable", "file", s.opts.CacheFile, "err", err)
		}
		return
	}
	var head struct {
		Generation int64 `json:"generation"`
	}
	_ = json.Unmarshal(raw, &head)
	rt, err := s.decode(raw, 0)
	if err != nil {
		s.opts.Logger.Error("config snapshot cache rejected", "file", s.opts.CacheFile, "err", err)
		return
	}
	s.opts.Logger.Info("config snapshot loaded from disk cache", "file", s.opts.CacheFile, "generation", head.Generation)
	s.swap(rt, head.Generation)
	s.fromDisk.Store(true)
}

// readFileLocked reads path under a shared lock (an exclusive one is held
// while it is written).
func readFileLocked(path string) ([]byte, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	unlock, err := lockFile(path, false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return os.ReadFile(path)
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so that a crash never leaves a torn snapshot; an
// exclusive lock keeps two writers from interleaving.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(path, true)
	if err != nil {
		return fmt.Errorf("cache file: %w", err)
	}
	defer unlock()
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename cache: %w", err)
	}
	return nil
}
