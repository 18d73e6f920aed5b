package proxycfg

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The compiled configuration crosses to the workers in Redis as an index and
// one shard per tenant, so that a change of one tenant costs the control
// plane, Redis and every worker in proportion to that tenant:
//
//   - ConfigShard(tenant, generation): the JSON of one tenant's Shard. A
//     shard key is written once per generation (only a control plane
//     restored from a backup writes a generation again) and before the
//     index names it; the publisher keeps the current and the previous
//     shard of a tenant, the previous one for ShardGrace (or less, once
//     every heartbeating worker has read the index past it).
//   - ConfigIndex: a hash, one field per tenant (its id) whose value is its
//     IndexEntry (String), plus the platform's fields IndexSeqField (the
//     index sequence, one step per publish) and IndexDigestField (the
//     installation's DigestVersion). One script changes the index and
//     appends to ConfigLog, under one hash tag.
//   - ConfigLog: a stream with one entry per publish, id "<seq>-1", field
//     LogTenantsField: the ids of the tenants it changed, comma-separated.
//     It is capped (about LogLength entries): a worker further behind
//     reads the whole index.
//   - ConfigChannel: pub/sub, one message per publish (ChannelMessage):
//     the sequence and the tenants it changed. A worker that sees the
//     sequence after its own reads just those tenants' entries; one that
//     missed a message finds the sequence moved when it polls
//     IndexSeqField, and reads the log.
//   - ConfigWorkers and ConfigWorkerBeat: each worker's config heartbeat
//     (ConfigWorkerBeat), the version it speaks and the index sequence it
//     has read, for the control plane.

// Fields of the index hash besides the tenants' (tenant ids never start
// with "~").
const (
	// IndexSeqField holds the index sequence (decimal): it moves by one
	// with every publish and names its ConfigLog entry.
	IndexSeqField = "~seq"
	// IndexDigestField holds the installation's digest key version
	// (DigestRaw or DigestDerived, decimal).
	IndexDigestField = "~digest_version"
	// LogTenantsField is the ConfigLog entry field listing the tenants of
	// one publish.
	LogTenantsField = "tenants"
	// LogLength is about how many publishes ConfigLog keeps.
	LogLength = 10000
)

// Retention of superseded shards and cadence of the workers' config
// heartbeats.
const (
	// ShardGrace is how long a superseded shard stays readable, for a
	// worker that read the index just before the publish that superseded
	// it; the publisher drops it earlier once every heartbeating worker
	// reports an index sequence past that publish.
	ShardGrace = 60 * time.Second
	// ConfigBeatInterval is how often a worker writes its config heartbeat
	// even when nothing changed; it also writes one when its index
	// sequence moves (at most once a second).
	ConfigBeatInterval = 10 * time.Second
	// ConfigBeatTTL is the lifetime of a worker's config heartbeat: a
	// worker silent that long is gone.
	ConfigBeatTTL = 3 * ConfigBeatInterval
)

// ConfigIndex is the hash of the config index.
func (k Keys) ConfigIndex() string { return k.Prefix + "{tollgate:cfg}:index" }

// ConfigLog is the stream of the tenants each publish changed.
func (k Keys) ConfigLog() string { return k.Prefix + "{tollgate:cfg}:log" }

// ConfigShard holds the JSON Shard of a tenant at a generation.
func (k Keys) ConfigShard(tenantID string, generation int64) string {
	return k.Prefix + "tollgate:cfg:shard:" + tenantID + ":" + strconv.FormatInt(generation, 10)
}

// ConfigChannel carries one ChannelMessage per publish.
func (k Keys) ConfigChannel() string { return k.Prefix + "tollgate:cfg:events" }

// ConfigWorkers is the hash of the workers that write config heartbeats:
// field the worker id, value the Unix millisecond of its last one. A field
// whose ConfigWorkerBeat key is gone is a worker that stopped; readers may
// delete it.
func (k Keys) ConfigWorkers() string { return k.Prefix + "{tollgate:cfg:workers}" }

// ConfigWorkerBeat holds a worker's ConfigWorkerBeat; it expires after
// ConfigBeatTTL. The hash tag puts every heartbeat in the slot of
// ConfigWorkers, so that a reader fetches them with one MGET.
func (k Keys) ConfigWorkerBeat(workerID string) string {
	return k.Prefix + "{tollgate:cfg:workers}:" + workerID
}

// Shard is one tenant's compiled configuration, as the control plane
// publishes it and a worker builds it. A worker validates it whole before it
// swaps it in; a bad one is rejected and the tenant's last good shard keeps
// serving.
type Shard struct {
	// Capability is the lowest CapabilityVersion that can enforce the
	// shard (Tenant.Capability). A worker that speaks less does not serve
	// it (DecodeShard answers *TooNewError).
	Capability int `json:"capability"`
	// Generation is the tenant's config generation: it increases with
	// every committed change of the tenant.
	Generation int64 `json:"generation"`
	// CompiledAt is when the control plane built the shard.
	CompiledAt time.Time `json:"compiled_at"`
	// Tenant is the configuration. Its ID, Slug and Domains are read even
	// by a worker too old for the rest (to refuse the tenant's hosts),
	// so their names and meaning never change.
	Tenant Tenant `json:"tenant"`
}

// NewShard makes the shard of t at generation gen, with the capability t
// needs.
func NewShard(t Tenant, gen int64, compiledAt time.Time) *Shard {
	return &Shard{Capability: t.Capability(), Generation: gen, CompiledAt: compiledAt, Tenant: t}
}

// Validate checks the shard: its envelope, and the tenant (Tenant.Validate).
func (s *Shard) Validate() error {
	if s == nil {
		return errors.New("nil shard")
	}
	if s.Capability < CapBase || s.Capability > CapabilityVersion {
		return fmt.Errorf("shard capability %d unknown (this build speaks %d to %d)", s.Capability, CapBase, CapabilityVersion)
	}
	if s.Generation <= 0 {
		return fmt.Errorf("shard generation %d not positive", s.Generation)
	}
	if need := s.Tenant.Capability(); s.Capability < need {
		// The compiler computes Capability from the same function: a
		// shard that claims less would reach workers that cannot
		// enforce it.
		return fmt.Errorf("shard claims capability %d but its config needs %d", s.Capability, need)
	}
	return s.Tenant.Validate()
}

// TooNewError is DecodeShard's answer for a shard that needs a newer worker.
// It carries what a worker reads of any shard, to refuse the tenant's
// hosts.
type TooNewError struct {
	// Need is the shard's Capability; Have is what the worker speaks.
	Need, Have int
	// TenantID, Slug and Domains name the tenant and its host names.
	TenantID, Slug string
	Domains        []string
}

func (e *TooNewError) Error() string {
	return fmt.Sprintf("tenant %q needs capability %d, this worker speaks %d", e.Slug, e.Need, e.Have)
}

// DecodeShard decodes and validates a shard for a worker that speaks
// capability have (CapabilityVersion unless the worker was built to speak
// less). A shard that needs more answers *TooNewError. Decoding is strict: a
// field this build does not know, or anything after the document, is an
// error, so that an older worker refuses what it cannot read instead of
// ignoring it.
func DecodeShard(raw []byte, have int) (*Shard, error) {
	var head struct {
		Capability int `json:"capability"`
		Tenant     struct {
			ID      string   `json:"id"`
			Slug    string   `json:"slug"`
			Domains []string `json:"domains"`
		} `json:"tenant"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("decode shard: %w", err)
	}
	if head.Capability > have {
		return nil, &TooNewError{Need: head.Capability, Have: have, TenantID: head.Tenant.ID, Slug: head.Tenant.Slug,
			Domains: head.Tenant.Domains}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s Shard
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode shard: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode shard: data after the document")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("shard of tenant %q generation %d: %w", s.Tenant.ID, s.Generation, err)
	}
	return &s, nil
}

// IndexEntry is a tenant's field of the index: which shard is current and
// what it needs.
type IndexEntry struct {
	// Generation names the shard (ConfigShard(tenant, Generation)).
	Generation int64
	// Capability is the shard's Capability.
	Capability int
	// Sum is ShardSum of the shard's bytes: a worker checks what it reads
	// against it, and tells a shard rewritten under the same generation
	// (a control plane restored from a backup) from the one it has.
	Sum string
	// Seq is the index sequence of the publish that wrote the entry.
	Seq int64
}

// String is the entry as the index holds it: "<generation> <capability>
// <sum> <seq>".
func (e IndexEntry) String() string {
	return strconv.FormatInt(e.Generation, 10) + " " + strconv.Itoa(e.Capability) + " " + e.Sum + " " +
		strconv.FormatInt(e.Seq, 10)
}

// ParseIndexEntry reads an index field's value.
func ParseIndexEntry(v string) (IndexEntry, error) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return IndexEntry{}, fmt.Errorf("index entry %q: want 4 fields", v)
	}
	gen, err1 := strconv.ParseInt(f[0], 10, 64)
	capv, err2 := strconv.Atoi(f[1])
	seq, err3 := strconv.ParseInt(f[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || gen <= 0 || capv < CapBase || f[2] == "" {
		return IndexEntry{}, fmt.Errorf("index entry %q: malformed", v)
	}
	return IndexEntry{Generation: gen, Capability: capv, Sum: f[2], Seq: seq}, nil
}

// Same reports whether e and o name the same shard bytes (Seq aside: a
// republish of the same shard is no change).
func (e IndexEntry) Same(o IndexEntry) bool {
	return e.Generation == o.Generation && e.Sum == o.Sum && e.Capability == o.Capability
}

// ShardSum is the checksum of a shard's bytes that its IndexEntry carries:
// the first 16 bytes of their SHA-256, in hex.
func ShardSum(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:16])
}

// ChannelMessage is the ConfigChannel payload of a publish: "<seq>" and, if
// any, a space and the changed tenants' ids, comma-separated.
func ChannelMessage(seq int64, tenants []string) string {
	m := strconv.FormatInt(seq, 10)
	if len(tenants) > 0 {
		m += " " + strings.Join(tenants, ",")
	}
	return m
}

// ParseChannelMessage reads a ConfigChannel payload.
func ParseChannelMessage(m string) (seq int64, tenants []string, err error) {
	head, rest, _ := strings.Cut(strings.TrimSpace(m), " ")
	seq, err = strconv.ParseInt(head, 10, 64)
	if err != nil || seq <= 0 {
		return 0, nil, fmt.Errorf("config message %.40q: malformed", m)
	}
	if rest != "" {
		tenants = strings.Split(rest, ",")
	}
	return seq, tenants, nil
}

// ConfigWorkerBeat is a worker's config heartbeat (Keys.ConfigWorkerBeat).
type ConfigWorkerBeat struct {
	// Capability is the CapabilityVersion the worker speaks.
	Capability int `json:"capability"`
	// Seq is the index sequence the worker has read: it no longer needs
	// a shard superseded at or before Seq.
	Seq int64 `json:"seq"`
	// At is when the worker wrote it (its clock).
	At time.Time `json:"at"`
}
