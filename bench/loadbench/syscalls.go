package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// System calls per request: where the CPU of a proxy goes once its own code
// is small. Counted with `perf stat` on the kernel's syscall tracepoints,
// for the proxy's processes only, over the measured run; skipped (with a
// note in the report) where perf or the tracepoints are not available.
//
// The figure explains the floor of the Go proxies: nginx and HAProxy read
// a socket when epoll said it is readable, while Go's net package reads
// first and parks the goroutine on EAGAIN, so every request costs a Go
// proxy two more read calls (one on the client's connection, waiting for
// its next request; one on the target's, waiting for the answer), as much
// for a bare fasthttp forwarder as for the Tollgate worker.

// syscallGroups sorts the tracepoints counted into the report's columns.
var syscallGroups = map[string][]string{
	"read":  {"read", "readv", "recvfrom", "recvmsg"},
	"write": {"write", "writev", "sendto", "sendmsg"},
	"poll":  {"epoll_wait", "epoll_pwait", "epoll_pwait2"},
	"other": {"futex", "nanosleep", "sched_yield", "epoll_ctl"},
}

// Syscalls are a run's system calls per request, by group.
type Syscalls struct {
	Read  float64 `json:"read"`
	Write float64 `json:"write"`
	Poll  float64 `json:"poll"`
	Other float64 `json:"other"`
}

// Total is every counted call per request.
func (s *Syscalls) Total() float64 { return s.Read + s.Write + s.Poll + s.Other }

// syscallEvents is the perf event list, or "" when perf cannot count them
// here (checked once).
var syscallEvents = func() func() (string, string) {
	var events, why string
	checked := false
	return func() (string, string) {
		if checked {
			return events, why
		}
		checked = true
		if _, err := exec.LookPath("perf"); err != nil {
			why = "perf not installed (apt-get install linux-perf)"
			return events, why
		}
		var evs []string
		for _, g := range []string{"read", "write", "poll", "other"} {
			for _, n := range syscallGroups[g] {
				evs = append(evs, "syscalls:sys_enter_"+n)
			}
		}
		// Keep the tracepoints this kernel has; perf refuses the list if
		// one is missing.
		var have []string
		for _, e := range evs {
			if exec.Command("perf", "stat", "-x,", "-e", e, "--", "true").Run() == nil {
				have = append(have, e)
			}
		}
		if len(have) == 0 {
			why = "perf cannot count syscall tracepoints here (needs root or kernel.perf_event_paranoid <= -1, and tracefs)"
			return events, why
		}
		events = strings.Join(have, ",")
		return events, why
	}
}()

// countSyscalls counts the system calls of pids for d; done receives the
// counts per second by tracepoint name (nil if perf failed).
func countSyscalls(ctx context.Context, pids []int, d time.Duration) <-chan map[string]float64 {
	done := make(chan map[string]float64, 1)
	events, _ := syscallEvents()
	if events == "" || len(pids) == 0 {
		done <- nil
		return done
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	go func() {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "perf", "stat", "-x,", "-e", events, "-p", strings.Join(ps, ","),
			"--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 3, 64))
		out, err := cmd.CombinedOutput()
		el := time.Since(start).Seconds()
		if err != nil || el <= 0 {
			done <- nil
			return
		}
		rates := map[string]float64{}
		for line := range strings.SplitSeq(string(out), "\n") {
			f := strings.Split(line, ",")
			if len(f) < 3 || !strings.HasPrefix(f[2], "syscalls:sys_enter_") {
				continue
			}
			n, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue // <not counted>
			}
			rates[strings.TrimPrefix(f[2], "syscalls:sys_enter_")] += n / el
		}
		done <- rates
	}()
	return done
}

// perRequest turns counts per second into calls per request at rps.
func perRequest(rates map[string]float64, rps float64) *Syscalls {
	if rates == nil || rps <= 0 {
		return nil
	}
	sum := func(g string) float64 {
		var s float64
		for _, n := range syscallGroups[g] {
			s += rates[n]
		}
		return s / rps
	}
	return &Syscalls{Read: sum("read"), Write: sum("write"), Poll: sum("poll"), Other: sum("other")}
}

// String is the report's cell: total (read + write + poll + other).
func (s *Syscalls) String() string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f (%.1f+%.1f+%.2f+%.2f)", s.Total(), s.Read, s.Write, s.Poll, s.Other)
}

// treePIDs lists root and its descendants.
func treePIDs(root int, kids map[int][]int) []int {
	var out []int
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, pid)
		stack = append(stack, kids[pid]...)
	}
	return out
}
