package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
)

// result is one measured run of one target.
type result struct {
	Round      int       `json:"round"`
	RPS        float64   `json:"rps"`
	Requests   int64     `json:"requests"`
	Seconds    float64   `json:"seconds"`
	P50        float64   `json:"p50_ms"`
	P99        float64   `json:"p99_ms"`
	P999       float64   `json:"p999_ms"`
	Max        float64   `json:"max_ms"`
	CPUus      float64   `json:"cpu_us_per_request"`             // the proxy's utime+stime per request
	ProxyBusy  float64   `json:"proxy_cpu_share"`                // the proxy's CPU seconds per wall second
	ClientBusy float64   `json:"client_cpu_share"`               // load generator + backend, per wall second
	BackendUS  float64   `json:"backend_us_per_request"`         // the backend's CPU per request
	RedisUS    float64   `json:"redis_us_per_request"`           // Redis's CPU per request (whoever caused it)
	ControlUS  float64   `json:"control_us_per_request"`         // tollgate dev (control plane, usage aggregator)
	Syscalls   *Syscalls `json:"syscalls_per_request,omitempty"` // the proxy's, by perf (syscalls.go); nil: not counted
	Errors     int64     `json:"errors"`
	Error      string    `json:"error,omitempty"`
	Raw        string    `json:"raw"`
}

// measure warms a target up, then loads it once and reads the CPU its
// processes spent meanwhile from /proc.
func (b *bench) measure(ctx context.Context, m *mode, t target, round int) result {
	r := result{Round: round}
	p := m.groups[t.Group]
	if p == nil || !p.alive() {
		r.Error = fmt.Sprintf("the %s process is not running (log %s)", t.Group, b.ps.logDir)
		return r
	}
	base := fmt.Sprintf("%s-%s-r%d", m.Name, t.Name, round)
	rawPath := filepath.Join(b.s.Out, "raw", base+".txt")
	r.Raw = filepath.Join("raw", base+".txt")

	// System calls are counted over the warm-up, not the measured run: the
	// tracepoints perf enables cost every call of the proxy (about 0.15 µs
	// each here), which would go into the CPU per request measured.
	countedWarm := false
	if b.s.Warmup > 0 {
		counter := startSyscalls(ctx, treePIDs(p.pid(), children()))
		out, _, err := b.load(ctx, m, t, b.s.Warmup, "")
		counts := counter.stop()
		if err != nil {
			r.Error = "warm-up: " + err.Error()
			return r
		}
		r.Syscalls, countedWarm = perRequest(counts, loadRequests(out, t.Proto)), true
		if t.Proto != "h1" {
			// The warm-up checks the protocol and the statuses of the HTTP/2 fronts.
			if e := checkH2(out); e != "" {
				r.Error = "warm-up: " + e
				_ = os.WriteFile(rawPath, []byte(out), 0o644)
				return r
			}
		}
	}

	kids := children()
	backendPID := m.groups["backend"].pid()
	before := [4]cpuSample{sampleTree(p.pid(), kids), sampleTree(backendPID, kids), sampleTree(b.redisPID, kids), sampleTree(b.devPID(), kids)}
	var counter *syscallCounter
	if !countedWarm {
		counter = startSyscalls(ctx, treePIDs(p.pid(), kids))
	}
	start := time.Now()
	logPath := ""
	if t.Proto != "h1" {
		logPath = filepath.Join(b.s.Work, base+".h2load.log")
	}
	out, clientCPU, err := b.load(ctx, m, t, b.s.Duration, logPath)
	wall := time.Since(start).Seconds()
	kids = children()
	after := [4]cpuSample{sampleTree(p.pid(), kids), sampleTree(backendPID, kids), sampleTree(b.redisPID, kids), sampleTree(b.devPID(), kids)}
	_ = os.WriteFile(rawPath, []byte(out), 0o644)
	counts := counter.stop()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if t.Proto == "h1" {
		err = parseWrk(out, &r)
	} else {
		err = parseH2load(out, logPath, &r)
		_ = os.Remove(logPath)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if r.Requests <= 0 {
		r.Error = "no requests completed"
		return r
	}
	proxySec, backendSec := after[0].seconds(before[0]), after[1].seconds(before[1])
	perReq := func(sec float64) float64 { return sec * 1e6 / float64(r.Requests) }
	r.CPUus = perReq(proxySec)
	r.BackendUS = perReq(backendSec)
	r.RedisUS = perReq(after[2].seconds(before[2]))
	r.ControlUS = perReq(after[3].seconds(before[3]))
	r.ProxyBusy = proxySec / wall
	if !countedWarm {
		r.Syscalls = perRequest(counts, r.Requests)
	}
	if t.Group == "backend" {
		r.ClientBusy = clientCPU / wall // the backend is the "proxy" of direct
	} else {
		r.ClientBusy = (clientCPU + backendSec) / wall
	}
	if r.Errors > 0 && r.Error == "" {
		r.Error = fmt.Sprintf("%d of %d responses failed or were not 2xx (see %s)", r.Errors, r.Requests, r.Raw)
	}
	return r
}

func (b *bench) devPID() int {
	if b.dev == nil {
		return 0
	}
	return b.dev.pid()
}

// load runs wrk (HTTP/1.1) or h2load (HTTP/2) against t for d, pinned to the
// mode's client CPUs, and returns its output and the CPU seconds it used.
func (b *bench) load(ctx context.Context, m *mode, t target, d time.Duration, h2log string) (string, float64, error) {
	secs := strconv.Itoa(int(d / time.Second))
	var argv, env []string
	if t.Proto == "h1" {
		argv = []string{"wrk", "-t", strconv.Itoa(m.Threads), "-c", strconv.Itoa(b.s.Connections), "-d", secs + "s",
			"--latency", "-s", b.s.WrkLua, t.URL}
		env = []string{"BENCH_HOST=" + benchHost, "BENCH_API_KEY=" + t.Key}
	} else {
		threads := min(m.Threads, b.s.H2Conns)
		argv = []string{"h2load", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(b.s.H2Conns), "-m", strconv.Itoa(b.s.H2Streams),
			"-D", secs, "--connect-to", fmt.Sprintf("127.0.0.1:%d", t.Port), "-H", "x-api-key: " + t.Key}
		if h2log != "" {
			argv = append(argv, "--log-file", h2log)
		}
		argv = append(argv, t.URL)
	}
	if m.ClientCPUs != "" {
		argv = append([]string{"taskset", "-c", m.ClientCPUs}, argv...)
	}
	tctx, cancel := context.WithTimeout(ctx, d+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	cmd.Env = append(benchproc.Env(), env...)
	out, err := cmd.CombinedOutput()
	var cpu float64
	if cmd.ProcessState != nil {
		cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if err != nil {
		return string(out), cpu, fmt.Errorf("%s: %v: %s", argv[0], err, lastLines(string(out), 3))
	}
	return string(out), cpu, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

var (
	reWrkRPS    = regexp.MustCompile(`(?m)^Requests/sec:\s+([\d.]+)`)
	reWrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
)

// parseWrk reads wrk's output: Requests/sec, and the BENCH line of wrk.lua's
// done() hook (exact percentiles in µs, errors by kind).
// loadRequests is the requests a load run's output reports done (0 if it
// cannot be read).
func loadRequests(out, proto string) int64 {
	if proto == "h1" {
		var r result
		if parseWrk(out, &r) != nil {
			return 0
		}
		return r.Requests
	}
	if rm := reH2Requests.FindStringSubmatch(out); rm != nil {
		n, _ := strconv.ParseInt(rm[3], 10, 64)
		return n
	}
	return 0
}

func parseWrk(out string, r *result) error {
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "BENCH ") {
			line = l
		}
	}
	if line == "" {
		return fmt.Errorf("wrk printed no BENCH line: %s", lastLines(out, 3))
	}
	f := map[string]int64{}
	for _, kv := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.ParseInt(v, 10, 64)
		f[k] = n
	}
	m := reWrkRPS.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("no Requests/sec in wrk's output")
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	r.Requests = f["requests"]
	r.Seconds = float64(f["duration_us"]) / 1e6
	r.P50, r.P99, r.P999, r.Max = float64(f["p50_us"])/1000, float64(f["p99_us"])/1000, float64(f["p999_us"])/1000, float64(f["max_us"])/1000
	r.Errors = f["err_connect"] + f["err_read"] + f["err_write"] + f["err_timeout"] + f["err_status"]
	if m := reWrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors = max(r.Errors, n+f["err_connect"]+f["err_read"]+f["err_write"]+f["err_timeout"])
	}
	return nil
}

var (
	reH2Finished = regexp.MustCompile(`finished in ([\d.]+)(s|ms), ([\d.]+) req/s`)
	reH2Requests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	reH2Status   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	reH2Proto    = regexp.MustCompile(`Application protocol: (\S+)`)
)

// checkH2 says what is wrong with an h2load run, or "".
func checkH2(out string) string {
	if m := reH2Proto.FindStringSubmatch(out); m == nil || m[1] != "h2" && m[1] != "h2c" {
		return "h2load did not speak HTTP/2: " + lastLines(out, 4)
	}
	m := reH2Requests.FindStringSubmatch(out)
	s := reH2Status.FindStringSubmatch(out)
	if m == nil || s == nil {
		return "unreadable h2load output: " + lastLines(out, 4)
	}
	if m[5] != "0" || m[6] != "0" || m[7] != "0" || s[3] != "0" || s[4] != "0" || m[4] == "0" {
		return fmt.Sprintf("h2load: %s succeeded, %s failed, %s errored, %s timeout, %s 4xx, %s 5xx", m[4], m[5], m[6], m[7], s[3], s[4])
	}
	return ""
}

// parseH2load reads h2load's summary and the percentiles from its per-request
// log (start µs, status, latency µs per line).
func parseH2load(out, logPath string, r *result) error {
	fm := reH2Finished.FindStringSubmatch(out)
	rm := reH2Requests.FindStringSubmatch(out)
	sm := reH2Status.FindStringSubmatch(out)
	if fm == nil || rm == nil || sm == nil {
		return fmt.Errorf("unreadable h2load output: %s", lastLines(out, 4))
	}
	r.Seconds, _ = strconv.ParseFloat(fm[1], 64)
	if fm[2] == "ms" {
		r.Seconds /= 1000
	}
	r.RPS, _ = strconv.ParseFloat(fm[3], 64)
	done, _ := strconv.ParseInt(rm[3], 10, 64)
	ok2xx, _ := strconv.ParseInt(sm[1], 10, 64)
	r.Requests = done
	r.Errors = done - ok2xx
	for _, i := range []int{5, 6, 7} {
		n, _ := strconv.ParseInt(rm[i], 10, 64)
		r.Errors += n
	}
	if e := checkH2(out); e != "" && r.Errors == 0 {
		return fmt.Errorf("%s", e)
	}
	f, err := os.Open(logPath)
	if err != nil {
		return fmt.Errorf("h2load log: %w", err)
	}
	defer f.Close()
	var lat []int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Fields(sc.Text())
		if len(cols) < 3 {
			continue
		}
		if v, err := strconv.ParseInt(cols[2], 10, 64); err == nil {
			lat = append(lat, v)
		}
	}
	if len(lat) == 0 {
		return fmt.Errorf("h2load log %s is empty", logPath)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := int(p/100*float64(len(lat))+0.5) - 1
		i = max(0, min(i, len(lat)-1))
		return float64(lat[i]) / 1000
	}
	r.P50, r.P99, r.P999, r.Max = pct(50), pct(99), pct(99.9), float64(lat[len(lat)-1])/1000
	return nil
}
