// Package health runs the active health checks of upstream targets and holds
// their state. A target is healthy until UnhealthyThreshold consecutive probes
// fail, and healthy again after HealthyThreshold consecutive successes.
//
// State is keyed by (upstream, target URL) and survives config reloads for
// unchanged pairs; checks of pairs that disappear stop.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate/tollgate/proxy/netguard"
	"github.com/tollgate/tollgate/proxy/proxycfg"
)

// DefaultTimeout bounds a probe whose check has no TimeoutMS.
const DefaultTimeout = 2 * time.Second

// Upstream is what the checker needs of one upstream.
type Upstream struct {
	// Key identifies the upstream across reloads (tenant and upstream id).
	Key string
	// Targets are the target URLs.
	Targets []string
	// Check is the upstream's health check; a zero IntervalMS disables it.
	Check proxycfg.HealthCheck
}

type pair struct{ upstream, url string }

type target struct {
	up        atomic.Bool
	lastCheck atomic.Int64           // Unix nanoseconds of the last probe's end, 0 for none
	lastErr   atomic.Pointer[string] // why the last probe failed, nil after a success
	check     proxycfg.HealthCheck
	stop      context.CancelFunc
	done      chan struct{}
	active    bool
}

// Checker owns the health state of every target. Create it with New; State
// and Sync must be called from one goroutine (the config loop), Pick-side
// readers only load the atomic states.
type Checker struct {
	client   *http.Client
	logger   *slog.Logger
	epoch    atomic.Uint64
	onReport func(upstreamKey string) // see OnReport

	mu      sync.Mutex
	targets map[pair]*target
	closed  bool
}

// New makes a Checker that probes through dialer (so that the SSRF policy
// holds for probes too).
func New(dialer *netguard.Dialer, logger *slog.Logger) *Checker {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &Checker{
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		logger:  logger,
		targets: map[pair]*target{},
	}
}

// Epoch changes whenever any target's health changes; balancers rebuild
// their schedules when it moves.
func (c *Checker) Epoch() *atomic.Uint64 { return &c.epoch }

// OnReport sets fn to be told, from the checks' goroutines, of every change
// of what a Reporter publishes of a target's check: a health flip or a
// first probe (a probe's error text alone is published with the
// heartbeat, which reads everything anyway). upstreamKey is the one
// targets were declared under. Set it before Sync starts checks.
func (c *Checker) OnReport(fn func(upstreamKey string)) { c.onReport = fn }

// reported tells OnReport's function of a change of p's target.
func (c *Checker) reported(p pair) {
	if c.onReport != nil {
		c.onReport(p.upstream)
	}
}

// State returns the health flag of a target, creating it (healthy) if it is
// new. Sync starts its checks.
func (c *Checker) State(upstreamKey, url string) *atomic.Bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := pair{upstreamKey, url}
	t := c.targets[p]
	if t == nil {
		t = &target{}
		t.up.Store(true)
		c.targets[p] = t
	}
	return &t.up
}

// Status is what a Checker knows of one target.
type Status struct {
	// Healthy is the active check's verdict (true without a check).
	Healthy bool
	// LastCheck is when the last probe ended; zero if never probed.
	LastCheck time.Time
	// LastError is why the last probe failed; "" if it succeeded.
	LastError string
}

// Status returns the state of a target; ok is false for a target the
// Checker does not know.
func (c *Checker) Status(upstreamKey, url string) (st Status, ok bool) {
	c.mu.Lock()
	t := c.targets[pair{upstreamKey, url}]
	c.mu.Unlock()
	if t == nil {
		return Status{}, false
	}
	st.Healthy = t.up.Load()
	if ns := t.lastCheck.Load(); ns != 0 {
		st.LastCheck = time.Unix(0, ns)
	}
	if e := t.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st, true
}

// Sync makes the running checks match upstreams: it starts checks of new
// targets, restarts those whose check changed (keeping their state), and
// stops and forgets targets that are gone. ctx bounds the checks' lifetime.
func (c *Checker) Sync(ctx context.Context, upstreams []Upstream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	want := map[pair]proxycfg.HealthCheck{}
	for _, u := range upstreams {
		for _, url := range u.Targets {
			want[pair{u.Key, url}] = u.Check
		}
	}
	for p, t := range c.targets {
		if _, ok := want[p]; !ok {
			t.halt()
			delete(c.targets, p)
		}
	}
	for p, hc := range want {
		t := c.targets[p]
		if t == nil {
			t = &target{}
			t.up.Store(true)
			c.targets[p] = t
		}
		if t.active && t.check == hc {
			continue
		}
		t.halt()
		t.check = hc
		if hc.IntervalMS <= 0 {
			if !t.up.Swap(true) {
				c.epoch.Add(1)
			}
			continue
		}
		cctx, cancel := context.WithCancel(ctx)
		t.stop, t.done, t.active = cancel, make(chan struct{}), true
		go c.run(cctx, p, t)
	}
}

// Close stops every check and waits for them to end.
func (c *Checker) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, t := range c.targets {
		t.halt()
	}
	c.client.CloseIdleConnections()
}

func (t *target) halt() {
	if !t.active {
		return
	}
	t.stop()
	<-t.done
	t.active = false
}

func (c *Checker) run(ctx context.Context, p pair, t *target) {
	defer close(t.done)
	hc := t.check
	interval := time.Duration(hc.IntervalMS) * time.Millisecond
	timeout := time.Duration(hc.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	healthyAfter := max(hc.HealthyThreshold, 1)
	unhealthyAfter := max(hc.UnhealthyThreshold, 1)
	probeURL := strings.TrimRight(p.url, "/") + hc.Path
	successes, failures := 0, 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		perr := c.probe(ctx, probeURL, timeout, hc.ExpectedStatus)
		if ctx.Err() != nil {
			return
		}
		if t.lastCheck.Swap(time.Now().UnixNano()) == 0 {
			c.reported(p) // probed for the first time
		}
		if perr == nil {
			t.lastErr.Store(nil)
		} else {
			msg := perr.Error()
			t.lastErr.Store(&msg)
		}
		if perr == nil {
			successes, failures = successes+1, 0
			if successes >= healthyAfter && !t.up.Load() {
				t.up.Store(true)
				c.epoch.Add(1)
				c.reported(p)
				c.logger.Info("upstream target healthy", "upstream", p.upstream, "target", p.url)
			}
		} else {
			failures, successes = failures+1, 0
			if failures >= unhealthyAfter && t.up.Load() {
				t.up.Store(false)
				c.epoch.Add(1)
				c.reported(p)
				c.logger.Warn("upstream target unhealthy", "upstream", p.upstream, "target", p.url)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// probe GETs url once; nil means the target answered as expected.
func (c *Checker) probe(ctx context.Context, url string, timeout time.Duration, expected int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe request: %w", err)
	}
	req.Header.Set("User-Agent", "tollgate-health-check")
	resp, err := c.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s", timeout)
		}
		var uerr *neturl.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is known to the reader
		}
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if expected != 0 {
		if resp.StatusCode != expected {
			return fmt.Errorf("status %d, want %d", resp.StatusCode, expected)
		}
		return nil
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
