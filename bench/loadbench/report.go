package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report is what a run prints and writes (summary.md, summary.json).
type report struct {
	s          *settings
	Date       string        `json:"date"`
	Tree       string        `json:"tree"`
	Machine    string        `json:"machine"`
	CPUs       int           `json:"cpus"`
	Tools      string        `json:"tools"`
	LoadBefore string        `json:"load_average_before"`
	LoadAfter  string        `json:"load_average_after"`
	Settings   *settings     `json:"settings"`
	Modes      []*modeReport `json:"modes"`
}

type modeReport struct {
	Name    string          `json:"name"`
	Title   string          `json:"title"`
	Targets []*targetReport `json:"targets"`
	Ratios  []ratio         `json:"ratios"`
	byName  map[string]*targetReport
}

type targetReport struct {
	Name      string   `json:"name"`
	Label     string   `json:"label"`
	Group     string   `json:"process"`
	Reference string   `json:"reference,omitempty"`
	Rounds    []result `json:"rounds"`
	Median    *result  `json:"median,omitempty"` // over the rounds without errors
}

// ratio is a target's medians over its reference's, with the range of the
// same ratio taken round by round.
type ratio struct {
	Target    string     `json:"target"`
	Reference string     `json:"reference"`
	RPS       float64    `json:"rps"`
	P99       float64    `json:"p99"`
	CPU       float64    `json:"cpu_per_request"`
	RPSRange  [2]float64 `json:"rps_rounds_min_max"`
	P99Range  [2]float64 `json:"p99_rounds_min_max"`
	CPURange  [2]float64 `json:"cpu_rounds_min_max"`
	// The best round of each over the best of the reference (most
	// requests/s, least CPU per request): on a shared VM other processes
	// and the host only ever add to a round, and now and then slow the
	// whole machine by a fifth for a round, the backend's CPU per request
	// included; medians of a few rounds then depend on which rounds that
	// hit. Reported beside the medians, not as the goals' figures.
	RPSBest float64 `json:"rps_best_rounds"`
	CPUBest float64 `json:"cpu_per_request_best_rounds"`
}

func newReport(s *settings) *report {
	return &report{s: s, Settings: s, Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), CPUs: runtime.NumCPU(), LoadBefore: loadAvg()}
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

func cmdOut(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

func (r *report) collectEnv(ctx context.Context, b *bench) {
	r.Tree = cmdOut("git", "-C", r.s.Repo, "describe", "--always", "--dirty")
	model := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	r.Machine = fmt.Sprintf("%d CPUs (%s), %s", r.CPUs, model, cmdOut("uname", "-srm"))
	first := func(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
	nginx := strings.TrimPrefix(first(cmdOut(nginxBinary(), "-v")), "nginx version: ")
	haproxy := first(cmdOut(haproxyBinary(), "-v"))
	if f := strings.Fields(haproxy); len(f) >= 3 {
		haproxy = "HAProxy " + f[2]
	}
	wrk := first(cmdOut("wrk", "-v"))
	if f := strings.Fields(wrk); len(f) >= 2 {
		wrk = "wrk " + f[1]
	}
	tools := []string{wrk, nginx, haproxy}
	if b.s.NoH2Reason == "" {
		tools = append(tools, first(cmdOut("h2load", "--version")))
	}
	r.Tools = strings.Join(append(tools, runtime.Version()), ", ")
}

func (r *report) mode(m *mode) *modeReport {
	mr := &modeReport{Name: m.Name, byName: map[string]*targetReport{}}
	if m.ProxyCPUs != "" {
		mr.Title = fmt.Sprintf("PER CORE: each proxy pinned to CPU %s (nginx worker_processes 1, HAProxy nbthread 1, Go GOMAXPROCS=1); "+
			"wrk -t%d -c%d and the backend pinned to CPU %s", m.ProxyCPUs, m.Threads, r.s.Connections, m.ClientCPUs)
		if m.ProxyCPUs == m.ClientCPUs {
			mr.Title += " (ONE CPU: proxy and load generator share it)"
		}
	} else {
		mr.Title = fmt.Sprintf("ALL CORES: nothing pinned (nginx worker_processes auto, HAProxy default threads, Go default GOMAXPROCS); "+
			"wrk -t%d -c%d; proxy, backend and wrk share the %d CPUs", m.Threads, r.s.Connections, r.CPUs)
	}
	for _, t := range m.targets {
		tr := &targetReport{Name: t.Name, Label: t.Label, Group: t.Group, Reference: t.Reference}
		mr.Targets = append(mr.Targets, tr)
		mr.byName[t.Name] = tr
	}
	r.Modes = append(r.Modes, mr)
	return mr
}

func (mr *modeReport) add(t target, res result) {
	tr := mr.byName[t.Name]
	tr.Rounds = append(tr.Rounds, res)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// finish computes the medians and ratios.
func (r *report) finish() {
	for _, mr := range r.Modes {
		for _, tr := range mr.Targets {
			var ok []result
			for _, x := range tr.Rounds {
				if x.Error == "" {
					ok = append(ok, x)
				}
			}
			if len(ok) == 0 {
				continue
			}
			med := func(f func(result) float64) float64 {
				v := make([]float64, len(ok))
				for i, x := range ok {
					v[i] = f(x)
				}
				return median(v)
			}
			tr.Median = &result{
				RPS: med(func(x result) float64 { return x.RPS }), P50: med(func(x result) float64 { return x.P50 }),
				P99: med(func(x result) float64 { return x.P99 }), P999: med(func(x result) float64 { return x.P999 }),
				Max: med(func(x result) float64 { return x.Max }), CPUus: med(func(x result) float64 { return x.CPUus }),
				ProxyBusy: med(func(x result) float64 { return x.ProxyBusy }), ClientBusy: med(func(x result) float64 { return x.ClientBusy }),
				BackendUS: med(func(x result) float64 { return x.BackendUS }), RedisUS: med(func(x result) float64 { return x.RedisUS }),
				ControlUS: med(func(x result) float64 { return x.ControlUS }),
				Requests:  int64(med(func(x result) float64 { return float64(x.Requests) })),
			}
			if ok[0].Syscalls != nil {
				sc := func(f func(*Syscalls) float64) float64 {
					return med(func(x result) float64 {
						if x.Syscalls == nil {
							return 0
						}
						return f(x.Syscalls)
					})
				}
				tr.Median.Syscalls = &Syscalls{Read: sc(func(s *Syscalls) float64 { return s.Read }),
					Write: sc(func(s *Syscalls) float64 { return s.Write }), Poll: sc(func(s *Syscalls) float64 { return s.Poll }),
					Other: sc(func(s *Syscalls) float64 { return s.Other })}
			}
		}
		mr.Ratios = nil
		for _, tr := range mr.Targets {
			ref := mr.byName[tr.Reference]
			if ref == nil || tr.Median == nil || ref.Median == nil {
				continue
			}
			q := ratio{Target: tr.Name, Reference: ref.Name,
				RPS: tr.Median.RPS / ref.Median.RPS, P99: tr.Median.P99 / ref.Median.P99, CPU: tr.Median.CPUus / ref.Median.CPUus}
			var rps, p99, cpu []float64
			for i, x := range tr.Rounds {
				if i < len(ref.Rounds) && x.Error == "" && ref.Rounds[i].Error == "" {
					y := ref.Rounds[i]
					rps, p99, cpu = append(rps, x.RPS/y.RPS), append(p99, x.P99/y.P99), append(cpu, x.CPUus/y.CPUus)
				}
			}
			best := func(rs []result, better func(a, b float64) bool, f func(result) float64) float64 {
				var v float64
				for _, x := range rs {
					if x.Error == "" && (v == 0 || better(f(x), v)) {
						v = f(x)
					}
				}
				return v
			}
			more := func(a, b float64) bool { return a > b }
			less := func(a, b float64) bool { return a < b }
			rpsOf := func(x result) float64 { return x.RPS }
			cpuOf := func(x result) float64 { return x.CPUus }
			if b := best(ref.Rounds, more, rpsOf); b > 0 {
				q.RPSBest = best(tr.Rounds, more, rpsOf) / b
			}
			if b := best(ref.Rounds, less, cpuOf); b > 0 {
				q.CPUBest = best(tr.Rounds, less, cpuOf) / b
			}
			if len(rps) > 0 {
				q.RPSRange = [2]float64{slices.Min(rps), slices.Max(rps)}
				q.P99Range = [2]float64{slices.Min(p99), slices.Max(p99)}
				q.CPURange = [2]float64{slices.Min(cpu), slices.Max(cpu)}
			}
			mr.Ratios = append(mr.Ratios, q)
		}
	}
}

func (mr *modeReport) ratioOf(target string) *ratio {
	for i := range mr.Ratios {
		if mr.Ratios[i].Target == target {
			return &mr.Ratios[i]
		}
	}
	return nil
}

func (r *report) failedRuns() int {
	n := 0
	for _, mr := range r.Modes {
		for _, tr := range mr.Targets {
			for _, x := range tr.Rounds {
				if x.Error != "" {
					n++
				}
			}
		}
	}
	return n
}

// thousands formats 18512.3 as "18,512".
func thousands(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func pct(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }

func rng(a [2]float64) string {
	if a[0] == 0 && a[1] == 0 {
		return ""
	}
	return fmt.Sprintf("(%.2f–%.2f)", a[0], a[1])
}

// render is the text table printed to stdout and kept in summary.md.
func (r *report) render() string {
	r.finish()
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	s := r.s
	w("Tollgate load bench, %s, tree %s\n", r.Date, r.Tree)
	w("machine: %s; load average %s before, %s after\n", r.Machine, r.LoadBefore, r.LoadAfter)
	w("tools: %s\n", r.Tools)
	w("%d rounds x %v per target, each after a %v warm-up; HTTP/1.1 by wrk -c%d, HTTP/2 by h2load -c%d -m%d\n",
		s.Rounds, s.Duration, s.Warmup, s.Connections, s.H2Conns, s.H2Streams)
	w("backend: one %s process on 2 ports (the 2 targets every proxy balances over); tollgate: key auth, plan rate limit\n", s.Backend)
	w("(1e8/s) and quota (1e12/month) never reached, round robin over the 2 targets with health checks, metering on\n")
	if s.NoH2Reason != "" {
		w("HTTP/2 skipped: %s\n", s.NoH2Reason)
	}
	if la, err := strconv.ParseFloat(strings.Fields(r.LoadBefore + " x")[0], 64); err == nil && la > 0.5*float64(r.CPUs) {
		w("WARNING: the machine was busy before the run (load average %.1f on %d CPUs): other processes share the cores, figures are noisy\n", la, r.CPUs)
	}
	for _, mr := range r.Modes {
		w("\n== %s\n\n", mr.Title)
		w("%-27s %9s %7s %7s %8s %11s %9s %10s %9s  %s\n", "target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "CPU µs/req", "proxy CPU", "client CPU", "redis µs",
			"syscalls/req (read+write+poll+other)")
		for _, tr := range mr.Targets {
			m := tr.Median
			if m == nil {
				w("%-27s %9s   (every round failed: %s)\n", tr.Label, "FAILED", tr.Rounds[0].Error)
				continue
			}
			cpu, busy := fmt.Sprintf("%.1f", m.CPUus), pct(m.ProxyBusy)
			if tr.Group == "backend" {
				cpu, busy = fmt.Sprintf("(%.1f)", m.CPUus), "-"
			}
			w("%-27s %9s %7.2f %7.2f %8.2f %11s %9s %10s %9.1f  %s\n", tr.Label, thousands(m.RPS), m.P50, m.P99, m.P999, cpu, busy, pct(m.ClientBusy), m.RedisUS,
				m.Syscalls.String())
		}
		w("\nmedians of %d rounds. CPU µs/req: utime+stime of the proxy's processes (/proc/<pid>/stat) / requests served\n", s.Rounds)
		w("(for direct, in parentheses: the backend's). proxy CPU, client CPU: CPU seconds per second of the proxy, and of\n")
		w("wrk/h2load + backend (near 100%% per pinned core = that side limits the rate). redis µs: Redis's CPU per request.\n")
		if _, why := syscallEvents(); why != "" {
			w("syscalls/req not counted: %s.\n", why)
		} else {
			w("syscalls/req: the proxy's system calls per request (perf stat on the syscall tracepoints, over the warm-up so that\n")
			w("their cost stays out of the CPU measured): Go's net package reads a socket before it waits on it (EAGAIN).\n")
		}

		w("\nrounds (req/s; p99 ms; CPU µs/req):\n")
		for _, tr := range mr.Targets {
			var rps, p99, cpu []string
			for _, x := range tr.Rounds {
				if x.Error != "" {
					rps, p99, cpu = append(rps, "ERR"), append(p99, "ERR"), append(cpu, "ERR")
					continue
				}
				rps, p99, cpu = append(rps, thousands(x.RPS)), append(p99, fmt.Sprintf("%.2f", x.P99)), append(cpu, fmt.Sprintf("%.1f", x.CPUus))
			}
			w("  %-27s %s; %s; %s\n", tr.Label, strings.Join(rps, " "), strings.Join(p99, " "), strings.Join(cpu, " "))
		}

		if q := mr.ratioOf("tollgate"); q != nil {
			w("\ntollgate (all features) / nginx, %s, from this run (medians; per-round range):\n", mr.Name)
			verdict := func(ok bool) string {
				if ok {
					return "met"
				}
				return "NOT MET"
			}
			if mr.Name == "percore" {
				w("  requests/s    %.2f× %-13s goal >= 0.90: %s\n", q.RPS, rng(q.RPSRange), verdict(q.RPS >= 0.9))
				w("  p99           %.2f× %-13s goal <= 1.30: %s\n", q.P99, rng(q.P99Range), verdict(q.P99 <= 1.3))
				w("  CPU/request   %.2f× %-13s goal <= 1.20: %s\n", q.CPU, rng(q.CPURange), verdict(q.CPU <= 1.2))
				w("  best rounds (interference only adds): requests/s %.2f×, CPU/request %.2f×\n", q.RPSBest, q.CPUBest)
				tg, ng := mr.byName["tollgate"].Median, mr.byName["nginx"].Median
				if max(tg.ProxyBusy, tg.ClientBusy) < 0.85 || max(ng.ProxyBusy, ng.ClientBusy) < 0.85 {
					w("  NOTE: neither the proxy's core nor the client's was saturated (tollgate %s/%s, nginx %s/%s):\n", pct(tg.ProxyBusy), pct(tg.ClientBusy), pct(ng.ProxyBusy), pct(ng.ClientBusy))
					w("  other processes took the CPUs, so the requests/s and p99 ratios measure the machine, not the proxies;\n")
					w("  CPU per request still holds.\n")
				}
			} else {
				w("  requests/s    %.2f× %s\n  p99           %.2f× %s\n  CPU/request   %.2f× %s\n", q.RPS, rng(q.RPSRange), q.P99, rng(q.P99Range), q.CPU, rng(q.CPURange))
			}
		}
		var others []ratio
		for _, q := range mr.Ratios {
			if q.Target != "tollgate" && !strings.HasPrefix(q.Target, "tg-") {
				others = append(others, q)
			}
		}
		if len(others) > 0 {
			w("\n%-50s %8s %8s %8s\n", "ratios (medians)", "req/s", "p99", "CPU/req")
			for _, q := range others {
				w("  %-48s %7.2f× %7.2f× %7.2f×\n", mr.byName[q.Target].Label+" / "+mr.byName[q.Reference].Label, q.RPS, q.P99, q.CPU)
			}
		}
		r.renderLadder(&b, mr)
	}
	return b.String()
}

// renderLadder prints what each feature adds to the CPU per request, from
// the engine's floor up to the worker with everything on.
func (r *report) renderLadder(b *strings.Builder, mr *modeReport) {
	rungs := []string{"forwarder"}
	rungs = append(rungs, ladderTargets...)
	rungs = append(rungs, "tollgate")
	nginx := mr.byName["nginx"]
	have := 0
	for _, n := range ladderTargets {
		if t := mr.byName[n]; t != nil && t.Median != nil {
			have++
		}
	}
	if have == 0 || nginx == nil || nginx.Median == nil {
		return
	}
	fmt.Fprintf(b, "\nfeature cost, %s (medians; ladder rungs: one worker built from proxy/worker, metering off until the last;\n", mr.Name)
	fmt.Fprintf(b, "last line: the real `tollgate proxy`):\n")
	fmt.Fprintf(b, "  %-27s %11s %8s %12s %12s\n", "", "CPU µs/req", "Δ µs", "CPU × nginx", "req/s × nginx")
	fmt.Fprintf(b, "  %-27s %11.1f %8s %12s %12s\n", nginx.Label, nginx.Median.CPUus, "", "1.00×", "1.00×")
	prev := 0.0
	for _, n := range rungs {
		t := mr.byName[n]
		if t == nil || t.Median == nil {
			continue
		}
		delta := ""
		if prev > 0 && n != "tollgate" {
			delta = fmt.Sprintf("%+.1f", t.Median.CPUus-prev)
		}
		fmt.Fprintf(b, "  %-27s %11.1f %8s %11.2f× %11.2f×\n", t.Label, t.Median.CPUus, delta,
			t.Median.CPUus/nginx.Median.CPUus, t.Median.RPS/nginx.Median.RPS)
		if n != "tollgate" {
			prev = t.Median.CPUus
		}
	}
}

// write stores summary.md and summary.json in the output directory and
// points bench/out/latest at it.
func (r *report) write(text string) error {
	var md strings.Builder
	fmt.Fprintf(&md, "# Tollgate load bench, %s\n\nWritten by `bench/load.sh`; raw wrk and h2load outputs are in `raw/`.\n\n```text\n%s```\n\n## Every round\n\n", r.Date, text)
	md.WriteString("| mode | target | round | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | proxy CPU | client CPU | backend µs/req | redis µs/req | control µs/req | errors | raw |\n")
	md.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mr := range r.Modes {
		for _, tr := range mr.Targets {
			for _, x := range tr.Rounds {
				errs := fmt.Sprint(x.Errors)
				if x.Error != "" {
					errs = strings.ReplaceAll(x.Error, "|", "/")
				}
				fmt.Fprintf(&md, "| %s | %s | %d | %s | %.2f | %.2f | %.2f | %.1f | %s | %s | %.1f | %.1f | %.1f | %s | [%s](%s) |\n",
					mr.Name, strings.TrimSpace(tr.Label), x.Round, thousands(x.RPS), x.P50, x.P99, x.P999, x.CPUus, pct(x.ProxyBusy), pct(x.ClientBusy),
					x.BackendUS, x.RedisUS, x.ControlUS, errs, filepath.Base(x.Raw), x.Raw)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(r.s.Out, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.s.Out, "summary.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	outDir := filepath.Join(r.s.Repo, "bench", "out")
	if filepath.Dir(filepath.Clean(r.s.Out)) != filepath.Clean(outDir) {
		return nil // a BENCH_OUT elsewhere: no latest link
	}
	latest := filepath.Join(outDir, "latest")
	if fi, err := os.Lstat(latest); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		return nil // not ours
	}
	_ = os.Remove(latest)
	_ = os.Symlink(filepath.Base(r.s.Out), latest)
	return nil
}
