package configsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// The disk cache keeps the last good config in one file per Redis
// deployment and key prefix (SnapshotPath), so that a worker restarted while
// Redis is down serves every tenant it served. A change of one tenant costs
// the disk in proportion to that tenant: the file is a log of JSON lines,
// appended to (and synced) after every change, and rewritten whole only
// when it has grown to twice what it holds:
//
//	{"kind":"header","format":"tollgate-config-cache/1"}
//	{"kind":"index","seq":812,"digest_version":1}
//	{"kind":"shard","tenant":"<id>","entry":"<IndexEntry>","shard":{...}}
//	{"kind":"drop","tenant":"<id>"}
//
// The last record of a tenant wins. Every append and rewrite holds the
// file's exclusive lock and every read its shared lock (lock_unix.go), so
// that two workers of one installation on a machine never interleave. A
// torn last line (a crash mid-append) is ignored; each shard is checked
// against its entry's sum and validated again when loaded. A file of the
// version before shards (one JSON snapshot) is read too, and rewritten in
// this form.

// cacheFormat names the file's format in its header.
const cacheFormat = "tollgate-config-cache/1"

// compactSlack is how far past twice its live records the file may grow
// before it is rewritten.
const compactSlack = 1 << 20

type cacheRecord struct {
	Kind          string          `json:"kind"`
	Format        string          `json:"format,omitempty"`
	Seq           int64           `json:"seq,omitempty"`
	DigestVersion *int            `json:"digest_version,omitempty"`
	Tenant        string          `json:"tenant,omitempty"`
	Entry         string          `json:"entry,omitempty"`
	Shard         json.RawMessage `json:"shard,omitempty"`
}

// cachedConfig is what a cache file holds.
type cachedConfig struct {
	seq    int64
	digest int
	shards map[string]cachedShard
}

type cachedShard struct {
	entry proxycfg.IndexEntry
	raw   []byte
	line  int // bytes of its record
}

// diskCache is the cache file of one Syncer (its goroutine only).
type diskCache struct {
	path       string
	capability int
	log        *slog.Logger
	size       int64          // bytes in the file, as this worker knows it
	live       map[string]int // bytes of each tenant's last record
	liveTotal  int64
}

// load reads the cache file: nil when there is none.
func (c *diskCache) load() (*cachedConfig, error) {
	data, err := readFileLocked(c.path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	cfg, legacy, err := parseCache(data)
	if err != nil {
		return nil, err
	}
	c.track(cfg, int64(len(data)))
	if legacy {
		// A snapshot file of the version before shards: rewritten in the
		// log's form before anything is appended to it.
		if err := c.rewrite(cfg); err != nil {
			c.log.Warn("config cache not rewritten in the current format", "file", c.path, "err", err)
		}
	}
	return cfg, nil
}

// track records the sizes of what cfg holds, in a file of size bytes.
func (c *diskCache) track(cfg *cachedConfig, size int64) {
	c.size = size
	c.live = make(map[string]int, len(cfg.shards))
	c.liveTotal = 0
	for id, s := range cfg.shards {
		c.live[id] = s.line
		c.liveTotal += int64(s.line)
	}
}

// record appends a change: the index sequence, the tenants' new shards
// (raws, with their entries) and the tenants removed. It rewrites the file
// when it has grown to twice what it holds.
func (c *diskCache) record(seq int64, digest int, entries map[string]proxycfg.IndexEntry, raws map[string][]byte, removed []string) error {
	var buf bytes.Buffer
	line := func(r cacheRecord) int {
		b, err := json.Marshal(r)
		if err != nil {
			return 0 // shards are JSON already; nothing else can fail
		}
		buf.Write(b)
		buf.WriteByte('\n')
		return len(b) + 1
	}
	line(cacheRecord{Kind: "index", Seq: seq, DigestVersion: &digest})
	sizes := map[string]int{}
	for _, id := range sortedKeys(raws) {
		n, ok := shardLine(&buf, id, entries[id], raws[id])
		if !ok {
			c.log.Warn("config cache: shard not kept on disk (not one line of JSON)", "tenant", id)
			continue
		}
		sizes[id] = n
	}
	for _, id := range removed {
		line(cacheRecord{Kind: "drop", Tenant: id})
	}
	n, err := c.append(buf.Bytes())
	if err != nil {
		return err
	}
	c.size += n
	if c.live == nil {
		c.live = map[string]int{}
	}
	for id, sz := range sizes {
		c.liveTotal += int64(sz - c.live[id])
		c.live[id] = sz
	}
	for _, id := range removed {
		c.liveTotal -= int64(c.live[id])
		delete(c.live, id)
	}
	if c.size > 2*c.liveTotal+compactSlack {
		return c.compact()
	}
	return nil
}

// append adds data to the file (a header first to a new file) and syncs
// it; it returns the bytes written.
func (c *diskCache) append(data []byte) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o750); err != nil {
		return 0, fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(c.path, true)
	if err != nil {
		return 0, fmt.Errorf("cache file: %w", err)
	}
	defer unlock()
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open cache: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("stat cache: %w", err)
	}
	if st.Size() == 0 {
		data = append(headerLine(), data...)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return 0, fmt.Errorf("append cache: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return 0, fmt.Errorf("sync cache: %w", err)
	}
	return int64(len(data)), f.Close()
}

// compact rewrites the file with only the last record of each tenant. It
// reads the file under the lock (another worker of the installation may
// have appended to it) rather than trusting this worker's view.
func (c *diskCache) compact() error {
	unlock, err := lockFile(c.path, true)
	if err != nil {
		return fmt.Errorf("cache file: %w", err)
	}
	defer unlock()
	data, err := os.ReadFile(c.path)
	if err != nil {
		return fmt.Errorf("read cache: %w", err)
	}
	cfg, _, err := parseCache(data)
	if err != nil {
		return err
	}
	return c.writeLocked(cfg)
}

// rewrite replaces the file with cfg.
func (c *diskCache) rewrite(cfg *cachedConfig) error {
	if err := os.MkdirAll(filepath.Dir(c.path), 0o750); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	unlock, err := lockFile(c.path, true)
	if err != nil {
		return fmt.Errorf("cache file: %w", err)
	}
	defer unlock()
	return c.writeLocked(cfg)
}

// writeLocked writes cfg as the whole file (atomically: a temporary file
// renamed over it); the caller holds the lock.
func (c *diskCache) writeLocked(cfg *cachedConfig) error {
	var buf bytes.Buffer
	buf.Write(headerLine())
	digest := cfg.digest
	b, _ := json.Marshal(cacheRecord{Kind: "index", Seq: cfg.seq, DigestVersion: &digest})
	buf.Write(b)
	buf.WriteByte('\n')
	for _, id := range sortedKeys(cfg.shards) {
		s := cfg.shards[id]
		n, ok := shardLine(&buf, id, s.entry, s.raw)
		if !ok {
			delete(cfg.shards, id)
			continue
		}
		s.line = n
		cfg.shards[id] = s
	}
	if err := writeFileAtomicLocked(c.path, buf.Bytes()); err != nil {
		return err
	}
	c.track(cfg, int64(buf.Len()))
	return nil
}

// shardLine appends the record of a shard, its bytes as they are (so that
// they still match the entry's sum), and returns the record's length; ok is
// false for bytes that are not one line.
func shardLine(buf *bytes.Buffer, id string, e proxycfg.IndexEntry, raw []byte) (n int, ok bool) {
	if len(raw) == 0 || bytes.ContainsAny(raw, "\r\n") {
		return 0, false
	}
	head, _ := json.Marshal(cacheRecord{Kind: "shard", Tenant: id, Entry: e.String()})
	start := buf.Len()
	buf.Write(head[:len(head)-1]) // without its "}"
	buf.WriteString(`,"shard":`)
	buf.Write(raw)
	buf.WriteString("}\n")
	return buf.Len() - start, true
}

func headerLine() []byte {
	b, _ := json.Marshal(cacheRecord{Kind: "header", Format: cacheFormat})
	return append(b, '\n')
}

// parseCache reads a cache file's content. legacy reports a file of the
// version before shards.
func parseCache(data []byte) (cfg *cachedConfig, legacy bool, err error) {
	first, _, _ := bytes.Cut(data, []byte{'\n'})
	var head cacheRecord
	if json.Unmarshal(first, &head) != nil || head.Kind != "header" {
		cfg, err := parseLegacy(data)
		return cfg, true, err
	}
	if head.Format != cacheFormat {
		return nil, false, fmt.Errorf("cache format %q unknown", head.Format)
	}
	cfg = &cachedConfig{shards: map[string]cachedShard{}}
	lines := bytes.Split(data, []byte{'\n'})
	for i, l := range lines[1:] {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var r cacheRecord
		if err := json.Unmarshal(l, &r); err != nil {
			if i == len(lines)-2 {
				break // a torn last line: the append that a crash cut
			}
			return nil, false, fmt.Errorf("cache line %d: %w", i+2, err)
		}
		switch r.Kind {
		case "index":
			cfg.seq = r.Seq
			if r.DigestVersion != nil {
				cfg.digest = *r.DigestVersion
			}
		case "shard":
			e, err := proxycfg.ParseIndexEntry(r.Entry)
			if err != nil {
				return nil, false, fmt.Errorf("cache line %d: %w", i+2, err)
			}
			cfg.shards[r.Tenant] = cachedShard{entry: e, raw: []byte(r.Shard), line: len(l) + 1}
		case "drop":
			delete(cfg.shards, r.Tenant)
		}
	}
	if cfg.seq <= 0 {
		return nil, false, errors.New("cache holds no index")
	}
	return cfg, false, nil
}

// parseLegacy reads the one-snapshot file of the version before shards:
// every tenant becomes a shard at the snapshot's generation.
func parseLegacy(data []byte) (*cachedConfig, error) {
	var snap proxycfg.Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return nil, fmt.Errorf("decode cache: %w", err)
	}
	if err := snap.Validate(); err != nil {
		return nil, fmt.Errorf("validate cached snapshot %d: %w", snap.Generation, err)
	}
	cfg := &cachedConfig{seq: snap.Generation, digest: snap.DigestVersion, shards: map[string]cachedShard{}}
	for _, t := range snap.Tenants {
		sh := proxycfg.NewShard(t, snap.Generation, snap.CompiledAt)
		raw, err := json.Marshal(sh)
		if err != nil {
			return nil, fmt.Errorf("encode cached tenant: %w", err)
		}
		cfg.shards[t.ID] = cachedShard{raw: raw, entry: proxycfg.IndexEntry{Generation: snap.Generation,
			Capability: sh.Capability, Sum: proxycfg.ShardSum(raw), Seq: snap.Generation}}
	}
	return cfg, nil
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

// writeFileAtomicLocked writes data to a temporary file beside path, syncs
// it and renames it over path, so that a crash never leaves a torn file;
// the caller holds the exclusive lock.
func writeFileAtomicLocked(path string, data []byte) error {
	dir := filepath.Dir(path)
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
