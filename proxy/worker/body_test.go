package worker

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate/tollgate/proxy/internal/testredis"
	"github.com/tollgate/tollgate/proxy/proxycfg"
	"github.com/tollgate/tollgate/proxy/worker/engine"
)

// digest is what a digestBackend answers: the body it read.
type digest struct {
	Backend string `json:"backend"`
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
	Chunked bool   `json:"chunked"`
}

// digestBackend reads request bodies in small pieces (pausing between
// them when slow) and answers their size and SHA-256. It answers 503 after
// reading the body while broken is set. When gate is set, it is called per
// request and the channel it returns is closed once gateAt bytes arrived.
func digestBackend(t *testing.T, name string, slow bool, broken *atomic.Bool, gate func() chan struct{}, gateAt int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var g chan struct{}
		if gate != nil {
			g = gate()
		}
		h := sha256.New()
		buf := make([]byte, 32<<10)
		var n int64
		for {
			m, err := r.Body.Read(buf)
			h.Write(buf[:m])
			if n += int64(m); g != nil && n >= gateAt {
				close(g)
				g = nil
			}
			if err != nil {
				break
			}
			if slow {
				time.Sleep(time.Millisecond)
			}
		}
		if broken != nil && broken.Load() {
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(digest{Backend: name, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil)),
			Chunked: r.ContentLength < 0})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// patternBody produces size deterministic bytes and their SHA-256. After
// pauseAt bytes it waits for gate: the backend must have received part of
// the body while the client still holds the rest, which only a streaming
// proxy allows.
type patternBody struct {
	size, sent, pauseAt int64
	gate                chan struct{}
	h                   hash.Hash
}

func newPatternBody(size, pauseAt int64, gate chan struct{}) *patternBody {
	return &patternBody{size: size, pauseAt: pauseAt, gate: gate, h: sha256.New()}
}

func (p *patternBody) Read(b []byte) (int, error) {
	if p.sent >= p.size {
		return 0, io.EOF
	}
	if p.gate != nil && p.sent == p.pauseAt {
		select {
		case <-p.gate:
		case <-time.After(20 * time.Second):
			return 0, errors.New("the backend received nothing while the client held the rest of the body: the body was buffered")
		}
	}
	limit := p.size
	if p.gate != nil && p.sent < p.pauseAt {
		limit = p.pauseAt
	}
	n := int(min(int64(len(b)), limit-p.sent))
	for i := range n {
		off := p.sent + int64(i)
		b[i] = byte(off*7 + off>>13)
	}
	p.h.Write(b[:n])
	p.sent += int64(n)
	return n, nil
}

func (p *patternBody) sum() string { return hex.EncodeToString(p.h.Sum(nil)) }

// post sends body through the worker, declaring its length when declared.
func (r *running) post(t *testing.T, method, path string, hdr map[string]string, body io.Reader, declared int64) (int, digest, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.traffic+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "acme.localhost"
	req.ContentLength = declared
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var d digest
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("backend answer %q: %v", raw, err)
		}
	}
	return resp.StatusCode, d, raw
}

// TestStreamedUpload sends 8 MiB bodies, chunked and with a length, to a
// backend that reads slowly. The client sends the first 2 MiB and holds
// the rest until the backend has received 1 MiB: with a buffering proxy it
// never would. The bytes must arrive intact, be metered, and the worker
// must not allocate anything near the body's size.
//
// Not parallel: the allocation check reads process-wide counters, which
// other tests running at the same time would disturb (parallel tests wait
// until the sequential ones are done).
func TestStreamedUpload(t *testing.T) {
	const size, pauseAt, gateAt = 8 << 20, 2 << 20, 1 << 20
	var gate atomic.Pointer[chan struct{}]
	be := digestBackend(t, "slow", true, nil, func() chan struct{} { return *gate.Load() }, gateAt)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: be.URL, Weight: 1}}}},
		[]proxycfg.API{{ID: "a", Slug: "up", BasePath: "/up", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true}},
		nil))
	var logBuf syncBuffer
	r := e.startWith(t, func(o *Options) { o.AccessLog = slog.New(slog.NewJSONHandler(&logBuf, nil)) })
	r.waitReady(t, 1)
	// Warm up connections and pools.
	g0 := make(chan struct{})
	gate.Store(&g0)
	if status, _, raw := r.post(t, http.MethodPost, "/up/warm", nil, strings.NewReader("warm"), -1); status != 200 {
		t.Fatalf("warm-up: status %d: %s", status, raw)
	}

	for _, tc := range []struct {
		name     string
		declared bool
	}{{name: "chunked"}, {name: "content-length", declared: true}} {
		t.Run(tc.name, func(t *testing.T) {
			g := make(chan struct{})
			gate.Store(&g)
			body := newPatternBody(size, pauseAt, g)
			declared := int64(-1)
			if tc.declared {
				declared = size
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			status, got, raw := r.post(t, http.MethodPost, "/up/"+tc.name, nil, body, declared)
			runtime.ReadMemStats(&after)
			if status != 200 {
				t.Fatalf("status %d: %s", status, raw)
			}
			if got.Bytes != size || got.SHA256 != body.sum() || got.Chunked == tc.declared {
				t.Fatalf("backend got %d bytes (sha %s, chunked %v), want %d (sha %s, chunked %v)",
					got.Bytes, got.SHA256, got.Chunked, size, body.sum(), !tc.declared)
			}
			// Everything the process allocated during the upload: the
			// client, the backend and the worker.
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s upload of %d bytes: %d bytes allocated in the process", tc.name, size, alloc)
			if alloc > size/4 {
				t.Fatalf("%d bytes allocated while %d streamed: the body is held in memory", alloc, size)
			}
			// The streamed bytes are counted (access log and usage meter
			// share the count).
			want := fmt.Sprintf(`"bytes_in":%d`, size)
			eventually(t, func() bool {
				for line := range strings.SplitSeq(logBuf.String(), "\n") {
					if strings.Contains(line, "/"+tc.name+`"`) && strings.Contains(line, `"status":200`) {
						return strings.Contains(line, want)
					}
				}
				return false
			})
		})
	}
}

// TestBodyLimits checks the per-API limit on declared, buffered and
// streamed bodies, and that bodies within it arrive intact.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	be := digestBackend(t, "b", false, nil, nil, 0)
	e := newEnv(t)
	const limit = 256 << 10
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin, Targets: []proxycfg.Target{{URL: be.URL, Weight: 1}}}},
		[]proxycfg.API{
			{ID: "s", Slug: "s", BasePath: "/small", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true, MaxBodyBytes: limit},
			{ID: "t", Slug: "t", BasePath: "/tiny", UpstreamID: "u", Auth: proxycfg.AuthNone, StripBasePath: true, MaxBodyBytes: 1000},
		}, nil))
	r := e.start(t, true)
	r.waitReady(t, 1)

	tests := []struct {
		name string
		path string
		size int
		// declared sends a Content-Length; raw sends a chunked body of
		// size bytes by hand, without the last chunk when over the limit
		// (so that nothing the worker did not read is left unread).
		declared bool
		raw      bool
		// truncated sends a chunk header of size bytes, half of them, and
		// then closes its side of the connection.
		truncated bool
		want      int
	}{
		{name: "chunked body broken off while buffering", path: "/small/x", size: 8 << 10, truncated: true, want: 400},
		{name: "chunked body broken off while streaming", path: "/small/x", size: 200 << 10, truncated: true, want: 400},
		{name: "declared length over the limit", path: "/small/x", size: 1 << 20, declared: true, want: 413},
		{name: "chunked over the limit while streaming", path: "/small/x", size: limit + 1, raw: true, want: 413},
		{name: "chunked over a small limit while buffering", path: "/tiny/x", size: 1001, raw: true, want: 413},
		{name: "chunked within the limit, streamed", path: "/small/x", size: 200 << 10, want: 200},
		{name: "chunked at the limit", path: "/small/x", size: limit, want: 200},
		{name: "declared within the limit, streamed", path: "/small/x", size: 100 << 10, declared: true, want: 200},
		{name: "declared within a small limit", path: "/tiny/x", size: 1000, declared: true, want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got response
			switch {
			case tc.declared && tc.want == 413:
				got = r.doHead(t, http.MethodPost, "acme.localhost", tc.path, tc.size)
			case tc.raw:
				got = r.rawChunked(t, tc.path, tc.size)
			case tc.truncated:
				got = r.rawTruncated(t, tc.path, tc.size)
				wantProblem(t, got, engine.ProblemBadBody)
				return
			default:
				body := newPatternBody(int64(tc.size), 0, nil)
				declared := int64(-1)
				if tc.declared {
					declared = int64(tc.size)
				}
				status, d, raw := r.post(t, http.MethodPost, tc.path, nil, body, declared)
				if status != tc.want {
					t.Fatalf("status %d (%s), want %d", status, raw, tc.want)
				}
				if d.Bytes != int64(tc.size) || d.SHA256 != body.sum() {
					t.Fatalf("backend got %d bytes (sha %s), want %d (sha %s)", d.Bytes, d.SHA256, tc.size, body.sum())
				}
				return
			}
			wantProblem(t, got, engine.ProblemTooLarge)
		})
	}
}

// rawChunked sends a chunked body of size bytes by hand and reads the
// answer. Over the API's limit the last chunk is left out: the worker
// answers once it read one byte too many.
func (r *running) rawChunked(t *testing.T, path string, size int) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.traffic, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		bw := bufio.NewWriter(conn)
		fmt.Fprintf(bw, "POST %s HTTP/1.1\r\nHost: acme.localhost\r\nTransfer-Encoding: chunked\r\n\r\n", path)
		chunk := strings.Repeat("y", 16<<10)
		for left := size; left > 0; left -= len(chunk) {
			c := chunk[:min(left, len(chunk))]
			fmt.Fprintf(bw, "%x\r\n%s\r\n", len(c), c)
		}
		_ = bw.Flush()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s (chunked by hand): %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusRequestEntityTooLarge && !resp.Close {
		t.Errorf("413 after part of a streamed body without closing the connection")
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// rawTruncated announces a chunk of size bytes, sends half of it, closes
// its side of the connection and reads the answer.
func (r *running) rawTruncated(t *testing.T, path string, size int) response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", r.traffic, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: acme.localhost\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s",
			path, size, strings.Repeat("z", size/2))
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s (broken off): %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// TestRetriesWithBodies checks that a small body is replayed on another
// target and that a streamed one is never retried.
func TestRetriesWithBodies(t *testing.T) {
	t.Parallel()
	var broken atomic.Bool
	broken.Store(true)
	bad := digestBackend(t, "bad", false, &broken, nil, 0)
	good := digestBackend(t, "good", false, nil, nil, 0)
	e := newEnv(t)
	testredis.Publish(t, e.rdb, e.keys, oneTenant(1,
		[]proxycfg.Upstream{{ID: "u", Algorithm: proxycfg.AlgorithmRoundRobin,
			Targets: []proxycfg.Target{{URL: bad.URL, Weight: 1}, {URL: good.URL, Weight: 1}},
			Retry:   proxycfg.Retry{Attempts: 2, BudgetPercent: 100}}},
		[]proxycfg.API{{ID: "a", Slug: "api", BasePath: "/", UpstreamID: "u", Auth: proxycfg.AuthNone}},
		nil))
	r := e.start(t, true)
	r.waitReady(t, 1)

	tests := []struct {
		name     string
		method   string
		hdr      map[string]string
		size     int64
		declared bool
		retried  bool
	}{
		{name: "small PUT", method: http.MethodPut, size: 4 << 10, declared: true, retried: true},
		{name: "small chunked PUT", method: http.MethodPut, size: 10 << 10, retried: true},
		{name: "small POST with Idempotency-Key", method: http.MethodPost, hdr: map[string]string{"Idempotency-Key": "k"},
			size: 60 << 10, declared: true, retried: true},
		{name: "large PUT streamed", method: http.MethodPut, size: engine.RetryBufferBytes + 1, declared: true},
		{name: "large chunked PUT streamed", method: http.MethodPut, size: 1 << 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			statuses := map[int]int{}
			for range 4 {
				body := newPatternBody(tc.size, 0, nil)
				declared := int64(-1)
				if tc.declared {
					declared = tc.size
				}
				status, d, raw := r.post(t, tc.method, "/x", tc.hdr, body, declared)
				statuses[status]++
				switch status {
				case 200:
					if d.Backend != "good" || d.Bytes != tc.size || d.SHA256 != body.sum() {
						t.Fatalf("backend %s got %d bytes (sha %s), want good with %d (sha %s)", d.Backend, d.Bytes, d.SHA256, tc.size, body.sum())
					}
				case 503:
				default:
					t.Fatalf("status %d: %s", status, raw)
				}
			}
			// Round robin over two targets picks the bad one at least once
			// in four requests.
			if tc.retried && statuses[200] != 4 {
				t.Fatalf("statuses %v; want four 200 (retried on the good target)", statuses)
			}
			if !tc.retried && statuses[503] == 0 {
				t.Fatalf("statuses %v; want some 503 (a streamed body is not retried)", statuses)
			}
		})
	}
}
