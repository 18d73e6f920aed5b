// Package jwtauth verifies the JWT bearer tokens of APIs with auth "jwt".
//
// A Verifier is shared by a worker across config reloads. It discovers each
// issuer once (OpenID Connect discovery, retried after a failure at most every
// DiscoveryRetry), keeps the issuer's JWKS cached and refetches it when a
// token names a key id it does not know (at most once per RefreshInterval per
// issuer, so that tokens with made-up kids cannot turn the gateway into a
// JWKS fetch amplifier). Signature checks use go-oidc with an algorithm
// allow-list: "none" and the HMAC algorithms are never accepted, which also
// defeats the HS256-signed-with-the-public-key confusion.
//
// Verified tokens are cached until they expire (bounded), so that a client
// reusing its token costs one map lookup, not one RSA verification, per
// request.
package jwtauth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Defaults of Options.
const (
	DefaultDiscoveryRetry  = 5 * time.Second
	DefaultRefreshInterval = 10 * time.Second
	DefaultCacheSize       = 65536
	DefaultTimeout         = 5 * time.Second
)

// Errors of Verify. ErrInvalid means the token is not acceptable (401);
// ErrUnavailable means the issuer could not be reached to tell (503).
var (
	ErrInvalid     = errors.New("invalid token")
	ErrUnavailable = errors.New("token issuer unavailable")
)

// Options configure a Verifier.
type Options struct {
	// HTTPClient fetches discovery documents and key sets; nil means a
	// client with a 5s timeout. Give it the worker's guarded dialer so that
	// the SSRF policy covers issuers too.
	HTTPClient *http.Client
	// Logger receives discovery and key fetch failures; nil discards.
	Logger *slog.Logger
	// DiscoveryRetry is the least time between discovery attempts of an
	// issuer that failed; 0 means 5s.
	DiscoveryRetry time.Duration
	// RefreshInterval is the least time between two key set fetches of an
	// issuer triggered by unknown key ids; 0 means 10s.
	RefreshInterval time.Duration
	// CacheSize bounds the verified-token cache; 0 means 65536, < 0 off.
	CacheSize int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Config is what an API asks of its tokens.
type Config struct {
	// Issuer is the issuer URL (discovery at Issuer/.well-known/openid-configuration).
	Issuer string
	// Audiences are the accepted "aud" values; a token must carry one.
	Audiences []string
	// Claim names the identifying claim; "" means "sub".
	Claim string
	// Algorithms is the signing algorithm allow-list; empty means RS256.
	Algorithms []string
}

// Identity is what a verified token says about its caller.
type Identity struct {
	// Subject is the value of the configured claim.
	Subject string
	// Scopes are the token's scopes ("scope" string or "scp" list).
	Scopes []string
	// Expiry is when the token expires.
	Expiry time.Time
}

// HasScopes reports whether id has every scope of want.
func (id *Identity) HasScopes(want []string) bool {
	for _, s := range want {
		if !slices.Contains(id.Scopes, s) {
			return false
		}
	}
	return true
}

// Verifier verifies tokens for many APIs and issuers. It is safe for
// concurrent use.
type Verifier struct {
	opts Options

	mu      sync.Mutex
	issuers map[string]*issuer

	cacheMu sync.RWMutex
	cache   map[[32]byte]cached

	// JWKSFetches counts key set fetches (for metrics and tests).
	JWKSFetches atomic.Int64
}

type cached struct {
	policy *Policy
	id     Identity
}

// New makes a Verifier.
func New(opts Options) *Verifier {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DiscoveryRetry <= 0 {
		opts.DiscoveryRetry = DefaultDiscoveryRetry
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Verifier{opts: opts, issuers: map[string]*issuer{}, cache: map[[32]byte]cached{}}
}

// issuer is one discovered issuer and its key set.
type issuer struct {
	url string
	v   *Verifier

	mu       sync.Mutex
	keys     *keySet // nil until discovered
	failedAt time.Time
	lastErr  error
}

// Policy is one API's token requirements, ready to verify. Build it with
// Verifier.Policy when a config is compiled; it is immutable.
type Policy struct {
	v        *Verifier
	iss      *issuer
	cfg      Config
	verifier atomic.Pointer[oidc.IDTokenVerifier]
}

// Policy prepares cfg for verification. It does not touch the network;
// the issuer is discovered on first use (call Warm to do it ahead).
func (v *Verifier) Policy(cfg Config) (*Policy, error) {
	if cfg.Issuer == "" || len(cfg.Audiences) == 0 {
		return nil, errors.New("jwtauth: issuer and audiences required")
	}
	if cfg.Claim == "" {
		cfg.Claim = "sub"
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{oidc.RS256}
	}
	for _, a := range cfg.Algorithms {
		if a == "none" || strings.HasPrefix(a, "HS") {
			return nil, fmt.Errorf("jwtauth: algorithm %q not allowed", a)
		}
	}
	cfg.Audiences = slices.Clone(cfg.Audiences)
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	// One issuer per exact URL: discovery and the token's "iss" are
	// compared with it byte for byte, so "https://idp/" and "https://idp"
	// are two issuers (one of them will not verify, as the IdP names only
	// one), never one checked by whichever API came first.
	v.mu.Lock()
	is := v.issuers[cfg.Issuer]
	if is == nil {
		is = &issuer{url: cfg.Issuer, v: v}
		v.issuers[cfg.Issuer] = is
	}
	v.mu.Unlock()
	return &Policy{v: v, iss: is, cfg: cfg}, nil
}

// Prune drops every issuer whose URL is not in keep (with its key set and
// the verified tokens of its policies), so that the issuers of removed
// APIs do not stay in memory for the worker's life. Call it after a new
// config went live, with the issuers of that config; policies of an older
// config keep working on what they hold. It returns how many it dropped.
func (v *Verifier) Prune(keep []string) int {
	live := make(map[string]bool, len(keep))
	for _, k := range keep {
		live[k] = true
	}
	dropped := map[*issuer]bool{}
	v.mu.Lock()
	for url, is := range v.issuers {
		if !live[url] {
			delete(v.issuers, url)
			dropped[is] = true
		}
	}
	v.mu.Unlock()
	if len(dropped) == 0 {
		return 0
	}
	v.cacheMu.Lock()
	for k, c := range v.cache {
		if dropped[c.policy.iss] {
			delete(v.cache, k)
		}
	}
	v.cacheMu.Unlock()
	return len(dropped)
}

// Issuers lists the URLs of the issuers the verifier holds.
func (v *Verifier) Issuers() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]string, 0, len(v.issuers))
	for url := range v.issuers {
		out = append(out, url)
	}
	slices.Sort(out)
	return out
}

// Warm discovers the policy's issuer now, so that the first request does
// not wait for it. Errors are returned and also retried on use.
func (p *Policy) Warm(ctx context.Context) error {
	_, err := p.iss.keySet(ctx)
	return err
}

// Verify checks a raw token (without "Bearer ") and returns its identity.
// Errors wrap ErrInvalid or ErrUnavailable.
func (p *Policy) Verify(ctx context.Context, raw []byte) (Identity, error) {
	if len(raw) == 0 {
		return Identity{}, fmt.Errorf("%w: empty token", ErrInvalid)
	}
	now := p.v.opts.Now()
	var ck [32]byte
	useCache := p.v.opts.CacheSize > 0
	if useCache {
		ck = sha256.Sum256(raw)
		p.v.cacheMu.RLock()
		c, ok := p.v.cache[ck]
		p.v.cacheMu.RUnlock()
		if ok && c.policy == p && now.Before(c.id.Expiry) {
			return c.id, nil
		}
	}
	ver, err := p.tokenVerifier(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := ver.Verify(ctx, string(raw))
	if err != nil {
		if errors.Is(err, errKeysUnavailable) {
			return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(p.cfg.Audiences, a) }) {
		return Identity{}, fmt.Errorf("%w: audience %q not accepted", ErrInvalid, tok.Audience)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %w", ErrInvalid, err)
	}
	id := Identity{Expiry: tok.Expiry, Scopes: scopes(claims)}
	switch s := claims[p.cfg.Claim].(type) {
	case string:
		id.Subject = s
	case json.Number:
		id.Subject = s.String()
	case float64:
		id.Subject = strings.TrimSuffix(fmt.Sprintf("%f", s), ".000000")
	}
	if id.Subject == "" {
		return Identity{}, fmt.Errorf("%w: claim %q missing", ErrInvalid, p.cfg.Claim)
	}
	if id.Expiry.IsZero() {
		// go-oidc accepts tokens without exp; a gateway should not cache
		// them for ever, nor accept them at all.
		return Identity{}, fmt.Errorf("%w: token without exp", ErrInvalid)
	}
	if useCache {
		p.v.remember(ck, cached{policy: p, id: id})
	}
	return id, nil
}

func (v *Verifier) remember(k [32]byte, c cached) {
	v.cacheMu.Lock()
	defer v.cacheMu.Unlock()
	if len(v.cache) >= v.opts.CacheSize {
		// Drop expired entries; if that is not enough, start over. A full
		// reset is rare and costs one verification per live token.
		now := v.opts.Now()
		for key, e := range v.cache {
			if !now.Before(e.id.Expiry) {
				delete(v.cache, key)
			}
		}
		if len(v.cache) >= v.opts.CacheSize {
			clear(v.cache)
		}
	}
	v.cache[k] = c
}

func scopes(claims map[string]any) []string {
	switch s := claims["scope"].(type) {
	case string:
		return strings.Fields(s)
	}
	switch s := claims["scp"].(type) {
	case string:
		return strings.Fields(s)
	case []any:
		out := make([]string, 0, len(s))
		for _, e := range s {
			if str, ok := e.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

func (p *Policy) tokenVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	if v := p.verifier.Load(); v != nil {
		return v, nil
	}
	ks, err := p.iss.keySet(ctx)
	if err != nil {
		return nil, err
	}
	v := oidc.NewVerifier(p.iss.url, ks, &oidc.Config{
		SkipClientIDCheck:    true, // audiences are checked against the list above
		SupportedSigningAlgs: p.cfg.Algorithms,
		Now:                  p.v.opts.Now,
	})
	p.verifier.Store(v)
	return v, nil
}

// keySet discovers the issuer once; a failure is remembered for
// DiscoveryRetry so that an unreachable IdP costs nothing per request.
func (is *issuer) keySet(ctx context.Context) (*keySet, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.keys != nil {
		return is.keys, nil
	}
	now := is.v.opts.Now()
	if !is.failedAt.IsZero() && now.Sub(is.failedAt) < is.v.opts.DiscoveryRetry {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, is.lastErr)
	}
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), is.v.opts.HTTPClient), DefaultTimeout)
	defer cancel()
	prov, err := oidc.NewProvider(dctx, is.url)
	if err != nil {
		is.failedAt, is.lastErr = now, err
		is.v.opts.Logger.Warn("oidc discovery failed", "issuer", is.url, "err", err)
		return nil, fmt.Errorf("%w: discovery: %w", ErrUnavailable, err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := prov.Claims(&meta); err != nil || meta.JWKSURL == "" {
		err = fmt.Errorf("discovery document without jwks_uri: %w", err)
		is.failedAt, is.lastErr = now, err
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	is.keys = &keySet{v: is.v, issuer: is.url, url: meta.JWKSURL}
	return is.keys, nil
}

// errKeysUnavailable marks a key set fetch that failed (as opposed to a
// token no key verifies).
var errKeysUnavailable = errors.New("key set unavailable")

// asymmetric are the algorithms a key set verifies; the policy's allow-list
// (checked by go-oidc before the key set is asked) narrows them further.
var asymmetric = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512, jose.EdDSA,
}

// keySet is an issuer's JWKS, cached. A token no cached key verifies makes
// it fetch the set again, at most once per RefreshInterval, so that forged
// tokens cannot make the gateway hammer the IdP.
type keySet struct {
	v      *Verifier
	issuer string
	url    string

	mu        sync.Mutex
	keys      []jose.JSONWebKey
	lastFetch time.Time
	fetching  chan struct{} // closed when the running fetch ends
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, asymmetric)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	keys := k.keys
	k.mu.Unlock()
	if p, ok := verifyWith(jws, keys, kid); ok {
		return p, nil
	}
	keys, err = k.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if p, ok := verifyWith(jws, keys, kid); ok {
		return p, nil
	}
	return nil, fmt.Errorf("no key of the issuer verifies the token (kid %q)", kid)
}

func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) ([]byte, bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, true
		}
	}
	return nil, false
}

// refresh fetches the key set unless that happened within RefreshInterval;
// concurrent callers share one fetch.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	if ch := k.fetching; ch != nil {
		k.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errKeysUnavailable, ctx.Err())
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.keys, nil
	}
	now := k.v.opts.Now()
	if !k.lastFetch.IsZero() && now.Sub(k.lastFetch) < k.v.opts.RefreshInterval {
		keys := k.keys
		k.mu.Unlock()
		return keys, nil
	}
	k.lastFetch = now
	ch := make(chan struct{})
	k.fetching = ch
	k.mu.Unlock()

	keys, err := k.fetch(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.fetching = nil
	close(ch)
	if err != nil {
		k.v.opts.Logger.Warn("jwks fetch failed", "issuer", k.issuer, "err", err)
		if len(k.keys) > 0 {
			// Keep verifying with the keys we have.
			return k.keys, nil
		}
		// Let the next request try again rather than wait out the interval.
		k.lastFetch = time.Time{}
		return nil, fmt.Errorf("%w: %w", errKeysUnavailable, err)
	}
	k.keys = keys
	return keys, nil
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.v.JWKSFetches.Add(1)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.v.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks get: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks get: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("jwks decode: %w", err)
	}
	keys := set.Keys[:0]
	for _, key := range set.Keys {
		// Only public signing keys; a symmetric key in a JWKS is never used.
		if key.IsPublic() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks has no public signing keys")
	}
	return keys, nil
}
