package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is the table: one column per size.
type report struct {
	sizes         []int
	workers       int
	keysPerTenant int
	started       time.Time
	ms            []*measurement
}

func (r *report) add(m *measurement) { r.ms = append(r.ms, m) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func fmtMs(sec float64) string { return fmt.Sprintf("%.2f", sec*1000) }

func meanF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func maxF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return slices.Max(xs)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianD(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	return strings.Join(append([]string{s}, out...), ",")
}

type line struct {
	label string
	f     func(m *measurement) string
}

func (r *report) lines() []line {
	return []line{
		{"routes / keys (total)", func(m *measurement) string {
			return thousands(m.tenants*apisPerTenant*max(*routesPerAPI, 1)) + " / " + thousands(m.tenants*r.keysPerTenant)
		}},
		{"config in Redis: all shards MB / largest tenant KB", func(m *measurement) string {
			return fmt.Sprintf("%.1f / %.1f", float64(m.shardBytes)/(1<<20), float64(m.tenantShardMax)/1024)
		}},
		{"/v1 seeding calls/s at 12 in flight (this step)", func(m *measurement) string {
			if m.seedCalls == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f", m.seedRate)
		}},
		{"/v1 writes/s at 12 in flight (PATCH api, 100 tenants)", func(m *measurement) string { return fmt.Sprintf("%.0f", m.writeRate) }},
		{"  their latency p50 / p99 ms", func(m *measurement) string {
			return ms(pct(m.writeLatency, 0.5)) + " / " + ms(pct(m.writeLatency, 0.99))
		}},
		{"  publisher + workers caught up after them s", func(m *measurement) string { return fmt.Sprintf("%.1f", m.writeSettle.Seconds()) }},
		{"one change: PATCH answered p50 ms", func(m *measurement) string { return ms(pct(m.patch, 0.5)) }},
		{"one change: write→published p50 / max ms", func(m *measurement) string {
			return ms(pct(m.published, 0.5)) + " / " + ms(pct(m.published, 1))
		}},
		{"one change: write→every worker p50 / p99 ms", func(m *measurement) string {
			return ms(pct(m.everyWorker, 0.5)) + " / " + ms(pct(m.everyWorker, 0.99))
		}},
		{"CPU per change: control plane ms", func(m *measurement) string { return fmtMs(m.ctlCPU) }},
		{"CPU per change: its Postgres backends ms", func(m *measurement) string { return fmtMs(m.pgCPU) }},
		{"CPU per change: Redis ms / commands", func(m *measurement) string {
			return fmtMs(m.redisCPU) + fmt.Sprintf(" / %.0f", m.redisCmds)
		}},
		{"CPU per change: each worker ms (mean / max)", func(m *measurement) string {
			return fmtMs(meanF(m.workerCPU)) + " / " + fmtMs(maxF(m.workerCPU))
		}},
		{"idle worker CPU % of a core (mean / max)", func(m *measurement) string {
			return fmt.Sprintf("%.2f / %.2f", 100*meanF(m.idleWorker), 100*maxF(m.idleWorker))
		}},
		{"idle control plane + Postgres CPU %", func(m *measurement) string {
			return fmt.Sprintf("%.2f + %.2f", 100*m.idleCtl, 100*m.idlePG)
		}},
		{"worker RSS MB (max; peak)", func(m *measurement) string {
			return fmt.Sprintf("%.0f; %.0f", maxF(m.workerRSS), maxF(m.workerHWM))
		}},
		{"control plane RSS MB (peak)", func(m *measurement) string { return fmt.Sprintf("%.0f; %.0f", m.ctlRSS, m.ctlHWM) }},
		{"Redis used_memory MB (keys in Redis)", func(m *measurement) string {
			return fmt.Sprintf("%.0f (%s)", m.redisUsed, thousands(int(m.redisKeys)))
		}},
		{"Postgres database MB", func(m *measurement) string { return fmt.Sprintf("%.0f", m.dbMB) }},
		{"worker cold start: ready / first 200 s", func(m *measurement) string {
			return fmt.Sprintf("%.2f / %.2f", m.coldReady.Seconds(), m.coldServe.Seconds())
		}},
		{"  its RSS after the first request MB", func(m *measurement) string { return fmt.Sprintf("%.0f", m.coldRSS) }},
		{"in-bench compose of every shard ms", func(m *measurement) string { return ms(m.buildTook) }},
		{"one tenant's key API, -c32: req/s (median / best round)", func(m *measurement) string {
			return fmt.Sprintf("%.0f / %.0f", median(m.rps), maxF(m.rps))
		}},
		{"  p99 ms / worker CPU µs per request", func(m *measurement) string {
			return ms(medianD(m.p99)) + fmt.Sprintf(" / %.1f", median(m.usPerReq))
		}},
		{"route lookup ns: host+API / route / total", func(m *measurement) string {
			return fmt.Sprintf("%.0f / %.0f / %.0f", m.hostAPINs, m.matchNs, m.hostAPINs+m.matchNs)
		}},
		{"bulk keys written s / settled s", func(m *measurement) string {
			if m.bulkKeys == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f / %.0f", m.bulkKeysTook.Seconds(), m.settleTook.Seconds())
		}},
		{"then waited for an idle control plane s", func(m *measurement) string { return fmt.Sprintf("%.0f", m.quietWait.Seconds()) }},
	}
}

func (r *report) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Tollgate scale bench, %s UTC; %d workers; each tenant 1 upstream, %d APIs of %d routes, 1 plan, 1 consumer, %d keys\n",
		r.started.Format("2006-01-02 15:04"), r.workers, apisPerTenant, max(*routesPerAPI, 1), r.keysPerTenant)
	host, _ := os.Hostname()
	fmt.Fprintf(&sb, "machine %s: %d CPUs, %s; load average %s\n\n", host, runtime.NumCPU(), runtime.Version(), loadAvg())
	rows := [][]string{{"tenants"}}
	for _, m := range r.ms {
		rows[0] = append(rows[0], thousands(m.tenants))
	}
	for _, l := range r.lines() {
		row := []string{l.label}
		for _, m := range r.ms {
			row = append(row, l.f(m))
		}
		rows = append(rows, row)
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, row := range rows {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i == 0 {
				sb.WriteString(c + pad)
			} else {
				sb.WriteString("   " + pad + c)
			}
		}
		sb.WriteString("\n")
	}
	return sb.String() + r.verdicts()
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// verdicts compares the largest size with the goals of issue 12.
func (r *report) verdicts() string {
	if len(r.ms) == 0 {
		return ""
	}
	last, first := r.ms[len(r.ms)-1], r.ms[0]
	var sb strings.Builder
	ok := func(b bool) string {
		if b {
			return "met"
		}
		return "NOT MET"
	}
	fmt.Fprintf(&sb, "\ngoals at %s tenants:\n", thousands(last.tenants))
	p99 := pct(last.everyWorker, 0.99)
	fmt.Fprintf(&sb, "  one change reaches every worker, p99 <= 100 ms: %s ms, %s\n", ms(p99), ok(p99 <= 100*time.Millisecond))
	fmt.Fprintf(&sb, "  worker RSS <= 512 MB: %.0f MB, %s\n", maxF(last.workerRSS), ok(maxF(last.workerRSS) <= 512))
	fmt.Fprintf(&sb, "  control plane RSS <= 1 GB: %.0f MB, %s\n", last.ctlRSS, ok(last.ctlRSS <= 1024))
	fmt.Fprintf(&sb, "  a worker serves within 10 s of its start: %.2f s, %s\n", last.coldServe.Seconds(), ok(last.coldServe <= 10*time.Second))
	look := last.hostAPINs + last.matchNs
	fmt.Fprintf(&sb, "  route lookup < 1 µs: %.0f ns, %s\n", look, ok(look < 1000))
	if first != last {
		// The best round: the machine's other processes (the bench's own
		// Postgres, Redis, idle workers) only ever slow a round down. CPU
		// per request is beside it, the figure noise moves least.
		ratio := maxF(last.rps) / maxF(first.rps)
		fmt.Fprintf(&sb, "  proxy req/s within 5%% of %s tenants (best rounds): %.2f× (%.0f vs %.0f; median %.2f×; worker CPU per request %.2f×), %s\n",
			thousands(first.tenants), ratio, maxF(last.rps), maxF(first.rps), median(last.rps)/median(first.rps),
			median(last.usPerReq)/median(first.usPerReq), ok(ratio >= 0.95))
		// Writes are compared from the first size of at least writeTenants
		// tenants: below it, writes in flight share tenants (writes()).
		wref := first
		for _, m := range r.ms {
			if m.tenants >= writeTenants {
				wref = m
				break
			}
		}
		if wref != last {
			wr := last.writeRate / wref.writeRate
			fmt.Fprintf(&sb, "  /v1 writes do not slow down: %.2f× of %s tenants' rate, %s\n", wr, thousands(wref.tenants), ok(wr >= 0.9))
		}
		fmt.Fprintf(&sb, "  cost of one change flat (%s → %s tenants): control plane %.2f×, Postgres %.2f×, Redis %.2f×, worker %.2f×\n",
			thousands(first.tenants), thousands(last.tenants), last.ctlCPU/first.ctlCPU, last.pgCPU/first.pgCPU,
			last.redisCPU/first.redisCPU, meanF(last.workerCPU)/meanF(first.workerCPU))
	}
	return sb.String()
}

// write saves the report as <dir>/scale-<UTC time>.txt.
func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(dir, "scale-"+r.started.Format("20060102T150405Z")+".txt")
	if err := os.WriteFile(p, []byte(r.String()), 0o644); err != nil {
		return err
	}
	fmt.Println("written to", p)
	return nil
}
