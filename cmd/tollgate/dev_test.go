package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/storetest"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDevCommand runs `tollgate dev` as the README says and checks that what
// it prints works: the demo key gets a 200 through the proxy.
func TestDevCommand(t *testing.T) {
	t.Parallel()
	dsn := storetest.NewDatabase(t)
	envFile := filepath.Join(t.TempDir(), "demo.env")
	env := map[string]string{
		"TOLLGATE_CONTROL_ADDR":       "127.0.0.1:0",
		"TOLLGATE_PROXY_ADDR":         "127.0.0.1:0",
		"TOLLGATE_PROXY_ADMIN_ADDR":   "127.0.0.1:0",
		"TOLLGATE_CONTROL_ADMIN_ADDR": "127.0.0.1:0",
		"TOLLGATE_REDIS_PREFIX":       "devtest:" + randHex(6) + ":",
		"TOLLGATE_LOG_LEVEL":          "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "-database", dsn, "-env-file", envFile, "-rate", "100"}, &out, func(k string) string { return env[k] })
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop within 30s of cancellation")
		}
	}()
	var vars map[string]string
	deadline := time.Now().Add(30 * time.Second)
	for vars == nil {
		if b, err := os.ReadFile(envFile); err == nil {
			vars = map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				k, v, _ := strings.Cut(line, "=")
				vars[k] = v
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("dev stopped early: %v\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev did not get ready in 30s:\n%s", out.String())
		}
	}
	printed := out.String()
	for _, want := range []string{"curl", vars["TOLLGATE_DEMO_KEY"], "/v1/", "Demo admin token",
		"http://localhost:" + vars["TOLLGATE_CONTROL_ADMIN_PORT"] + "/metrics"} {
		if want == "" || !strings.Contains(printed, want) {
			t.Errorf("dev output lacks %q:\n%s", want, printed)
		}
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+vars["TOLLGATE_PROXY_PORT"]+"/demo/hello", nil)
	req.Host = vars["TOLLGATE_DEMO_HOST"]
	req.Header.Set("X-API-Key", vars["TOLLGATE_DEMO_KEY"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"backend"`) {
		t.Fatalf("demo call: %d %s", resp.StatusCode, body)
	}
	// The control plane's metrics, on the port the banner printed.
	resp, err = http.Get("http://127.0.0.1:" + vars["TOLLGATE_CONTROL_ADMIN_PORT"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "tollgate_control_publisher_published_generation") {
		t.Fatalf("control metrics: %d %.300s", resp.StatusCode, body)
	}
}
