package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The load client. It never retries on its own (fasthttp's retry of
// idempotent requests on a broken keep-alive connection is off), so every
// request a fault broke is counted; the only retry is the balancer's, of a
// request refused at connect, which reached no worker.

// pool is the bench's client-side load balancer: round robin over the
// workers in rotation. A worker leaves the rotation when its /readyz stops
// answering 200 (checked every 100 ms, as a load balancer's health check)
// or when a request to it fails in transport, and comes back when /readyz
// answers 200 again. Leaving the rotation drops the worker's idle
// connections (a killed worker's are dead). A request refused at connect is
// sent to the next worker in rotation.
type pool struct {
	ws      []*worker
	in      []atomic.Bool
	clients []atomic.Pointer[fasthttp.HostClient]
	lastOK  []atomic.Int64 // unix nanoseconds of the last 200 of each worker
	next    atomic.Uint64
	quit    chan struct{}
	done    chan struct{}
}

func newPool(ws ...*worker) *pool {
	p := &pool{ws: ws, in: make([]atomic.Bool, len(ws)), clients: make([]atomic.Pointer[fasthttp.HostClient], len(ws)),
		lastOK: make([]atomic.Int64, len(ws)), quit: make(chan struct{}), done: make(chan struct{})}
	for i, w := range ws {
		p.in[i].Store(w.readyGen() > 0)
		p.clients[i].Store(newHostClient(w.traffic))
	}
	go p.check()
	return p
}

func newHostClient(addr string) *fasthttp.HostClient {
	return &fasthttp.HostClient{Addr: addr, MaxConns: *conns * 2, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxIdemponentCallAttempts: 1}
}

func (p *pool) check() {
	defer close(p.done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		for i, w := range p.ws {
			if w.readyGen() > 0 {
				p.in[i].Store(true)
			} else {
				p.out(i)
			}
		}
	}
}

func (p *pool) close() {
	close(p.quit)
	<-p.done
	for i := range p.clients {
		p.clients[i].Load().CloseIdleConnections()
	}
}

// out takes worker i out of the rotation.
func (p *pool) out(i int) {
	if p.in[i].CompareAndSwap(true, false) {
		old := p.clients[i].Swap(newHostClient(p.ws[i].traffic))
		old.CloseIdleConnections()
	}
}

// pick is the next worker in rotation (any worker when none is).
func (p *pool) pick() int {
	n := uint64(len(p.ws))
	for range n {
		if i := int(p.next.Add(1) % n); p.in[i].Load() {
			return i
		}
	}
	return int(p.next.Add(1) % n)
}

// do sends req to a worker and returns which one answered (or failed).
func (p *pool) do(req *fasthttp.Request, resp *fasthttp.Response) (int, error) {
	i := p.pick()
	err := p.clients[i].Load().Do(req, resp)
	if err != nil && errors.Is(err, syscall.ECONNREFUSED) && len(p.ws) > 1 {
		// Nothing reached the worker: try the next one.
		p.out(i)
		if j := p.pick(); j != i {
			i = j
			resp.Reset()
			err = p.clients[i].Load().Do(req, resp)
		}
	}
	if err != nil {
		p.out(i)
	} else if resp.StatusCode() == 200 {
		p.lastOK[i].Store(time.Now().UnixNano())
	}
	return i, err
}

// servedSince reports whether worker i answered 200 after t.
func (p *pool) servedSince(i int, t time.Time) bool { return p.lastOK[i].Load() > t.UnixNano() }

// loadSpec is what a load sends.
type loadSpec struct {
	pool   *pool
	host   string // Host of the requests: "acme.localhost"
	path   string
	key    string // X-API-Key; "" sends none
	conns  int    // 0 means -connections
	n      int    // stop after n requests when > 0, else on stop
	header func(i int, req *fasthttp.Request)
}

// load is requests sent over conns connections until stopped.
type load struct {
	spec      loadSpec
	quit      chan struct{}
	wg        sync.WaitGroup
	seq       atomic.Int64
	ok        atomic.Int64
	failed    atomic.Int64
	firstFail atomic.Int64 // unix nanoseconds
	lastFail  atomic.Int64
	slowest   atomic.Int64 // nanoseconds

	mu  sync.Mutex
	res result
}

// result is what a load saw.
type result struct {
	ok, failed int64
	// byStatus counts answers by HTTP status and transport failures by
	// kind: "reset" (the connection broke with the request sent),
	// "refused", "timeout", "error".
	byStatus  map[string]int64
	byBackend map[string]int64
	byWorker  []int64 // 200s per worker of the pool
	samples   []string
	firstFail time.Time
	lastFail  time.Time
	slowest   time.Duration // the longest answer or failure
}

func startLoad(s loadSpec) *load {
	if s.conns == 0 {
		s.conns = *conns
	}
	l := &load{spec: s, quit: make(chan struct{})}
	l.res = result{byStatus: map[string]int64{}, byBackend: map[string]int64{}, byWorker: make([]int64, len(s.pool.ws))}
	uri := "http://" + s.host + s.path
	for range s.conns {
		l.wg.Go(func() {
			req := fasthttp.AcquireRequest()
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			status := map[string]int64{}
			backends := map[string]int64{}
			workers := make([]int64, len(s.pool.ws))
			var samples []string
			for {
				i := int(l.seq.Add(1))
				if s.n > 0 && i > s.n {
					break
				}
				if l.stopped() {
					break
				}
				req.Reset()
				resp.Reset()
				req.SetRequestURI(uri)
				if s.key != "" {
					req.Header.Set("X-API-Key", s.key)
				}
				if s.header != nil {
					s.header(i, req)
				}
				sent := time.Now()
				w, err := s.pool.do(req, resp)
				took := int64(time.Since(sent))
				for {
					m := l.slowest.Load()
					if took <= m || l.slowest.CompareAndSwap(m, took) {
						break
					}
				}
				kind := ""
				switch {
				case err != nil:
					kind = errKind(err)
					if len(samples) < 3 {
						samples = append(samples, err.Error())
					}
				case resp.StatusCode() != 200:
					kind = strconv.Itoa(resp.StatusCode())
					if len(samples) < 3 {
						samples = append(samples, fmt.Sprintf("status %d: %.200s", resp.StatusCode(), resp.Body()))
					}
				}
				if kind == "" {
					l.ok.Add(1)
					status["200"]++
					backends[string(resp.Header.Peek("X-Backend"))]++
					workers[w]++
				} else {
					l.failed.Add(1)
					status[kind]++
					now := time.Now().UnixNano()
					l.firstFail.CompareAndSwap(0, now)
					for {
						last := l.lastFail.Load()
						if now <= last || l.lastFail.CompareAndSwap(last, now) {
							break
						}
					}
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			for k, v := range status {
				l.res.byStatus[k] += v
			}
			for k, v := range backends {
				l.res.byBackend[k] += v
			}
			for i, v := range workers {
				l.res.byWorker[i] += v
			}
			l.res.samples = append(l.res.samples, samples...)
		})
	}
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.quit:
		return true
	default:
		return false
	}
}

// stop ends the load and returns what it saw.
func (l *load) stop() result {
	close(l.quit)
	return l.wait()
}

// wait waits for a load of n requests to end.
func (l *load) wait() result {
	l.wg.Wait()
	l.res.ok, l.res.failed = l.ok.Load(), l.failed.Load()
	if t := l.firstFail.Load(); t != 0 {
		l.res.firstFail = time.Unix(0, t)
	}
	if t := l.lastFail.Load(); t != 0 {
		l.res.lastFail = time.Unix(0, t)
	}
	l.res.slowest = time.Duration(l.slowest.Load())
	return l.res
}

// count is the number of requests answered so far, ok or not.
func (l *load) count() (ok, failed int64) { return l.ok.Load(), l.failed.Load() }

// errKind names a transport failure.
func errKind(err error) string {
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &timeout) && timeout.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, fasthttp.ErrConnectionClosed):
		return "reset"
	}
	return "error"
}

func (r result) total() int64 { return r.ok + r.failed }

// statuses is byStatus as "200: 1,234; 503: 5", 200 first.
func (r result) statuses() string {
	return formatCounts(r.byStatus)
}

func formatCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		// Numbers (statuses) first, in order, then transport kinds.
		ni, ei := strconv.Atoi(keys[i])
		nj, ej := strconv.Atoi(keys[j])
		switch {
		case ei == nil && ej == nil:
			return ni < nj
		case (ei == nil) != (ej == nil):
			return ei == nil
		}
		return keys[i] < keys[j]
	})
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+": "+thousands(m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r result) summary() string {
	s := fmt.Sprintf("%s requests, %s failed (%s)", thousands(r.total()), thousands(r.failed), r.statuses())
	if r.slowest > 0 {
		s += ", slowest " + ms(r.slowest)
	}
	if len(r.samples) > 0 {
		s += fmt.Sprintf("; e.g. %q", r.samples[0])
	}
	return s
}

// thousands formats n with commas: 102,914.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate is requests per second over d.
func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return thousands(int64(float64(n)/d.Seconds())) + "/s"
}
