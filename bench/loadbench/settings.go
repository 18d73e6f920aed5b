package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// settings of a run: paths from flags (load.sh passes them), knobs from
// BENCH_* variables (documented in load.sh and bench/README.md).
type settings struct {
	Repo       string `json:"-"`
	Work       string `json:"-"`
	Out        string `json:"-"`
	Tollgate   string `json:"-"`
	Self       string `json:"-"`
	Forwarder  string `json:"-"`
	WrkLua     string `json:"-"`
	NoH2Reason string `json:"h2_skipped,omitempty"`

	Rounds      int           `json:"rounds"`
	Duration    time.Duration `json:"-"`
	Warmup      time.Duration `json:"-"`
	DurationS   string        `json:"duration"`
	WarmupS     string        `json:"warmup"`
	Connections int           `json:"connections"`
	Threads     int           `json:"threads_per_core"`
	AllThreads  int           `json:"threads_all_cores"`
	H2Conns     int           `json:"h2_connections"`
	H2Streams   int           `json:"h2_streams_per_connection"`
	Modes       []string      `json:"modes"`
	Targets     []string      `json:"targets_per_core"`
	AllTargets  []string      `json:"targets_all_cores"`
	ProxyCPU    string        `json:"proxy_cpu"`
	ClientCPUs  string        `json:"client_cpus"`
	Backend     string        `json:"backend_engine"`
	AllowErrors bool          `json:"allow_errors"`

	DatabaseURL string `json:"-"`
	RedisURL    string `json:"-"`
	RedisPrefix string `json:"-"`
}

// The targets, in the order they are measured and reported.
var (
	h1Targets     = []string{"direct", "nginx", "haproxy", "forwarder", "tollgate"}
	ladderTargets = []string{"tg-none", "tg-key", "tg-ratelimit", "tg-quota", "tg-metering"}
	h2Targets     = []string{"nginx-h2", "tollgate-h2", "nginx-h2c", "tollgate-h2c"}
	allTargets    = slices.Concat(h1Targets, ladderTargets, h2Targets)
)

func loadSettings(args []string) (*settings, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	s := &settings{}
	fs.StringVar(&s.Repo, "repo", ".", "repository root")
	fs.StringVar(&s.Work, "work", "", "scratch directory (logs, configs); required")
	fs.StringVar(&s.Out, "out", "", "output directory (default bench/out/<UTC timestamp>)")
	fs.StringVar(&s.Tollgate, "tollgate", "bin/tollgate", "tollgate binary")
	fs.StringVar(&s.Forwarder, "forwarder", "", "bench/forwarder binary; required")
	fs.StringVar(&s.NoH2Reason, "no-h2", "", "skip the HTTP/2 targets, giving this reason")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if s.Work == "" || s.Forwarder == "" {
		return nil, fmt.Errorf("run needs -work and -forwarder (bench/load.sh passes them)")
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s.Self = self
	s.WrkLua = filepath.Join(s.Repo, "bench", "wrk.lua")
	if s.Out == "" {
		s.Out = filepath.Join(s.Repo, "bench", "out", time.Now().UTC().Format("20060102T150405Z"))
	}

	var errs []string
	intVar := func(name string, def, min int) int {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			errs = append(errs, fmt.Sprintf("%s=%q: want an integer >= %d", name, v, min))
			return def
		}
		return n
	}
	durVar := func(name string, def time.Duration, min time.Duration) time.Duration {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			return def
		}
		if n, err := strconv.Atoi(v); err == nil {
			v = strconv.Itoa(n) + "s"
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < min || d%time.Second != 0 {
			errs = append(errs, fmt.Sprintf("%s=%q: want whole seconds >= %v, such as 8s", name, v, min))
			return def
		}
		return d
	}
	listVar := func(name string, def, valid []string) []string {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			return def
		}
		if v == "all" {
			return valid
		}
		if v == "none" {
			return nil
		}
		var out []string
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			switch {
			case f == "ladder":
				out = append(out, ladderTargets...)
			case f == "h2":
				out = append(out, h2Targets...)
			case slices.Contains(valid, f):
				out = append(out, f)
			default:
				errs = append(errs, fmt.Sprintf("%s: unknown %q (want %s)", name, f, strings.Join(valid, " ")))
			}
		}
		return out
	}

	ncpu := runtime.NumCPU()
	s.Rounds = intVar("BENCH_ROUNDS", 3, 1)
	s.Duration = durVar("BENCH_DURATION", 8*time.Second, time.Second)
	s.Warmup = durVar("BENCH_WARMUP", 2*time.Second, 0)
	s.DurationS, s.WarmupS = s.Duration.String(), s.Warmup.String()
	s.Connections = intVar("BENCH_CONNECTIONS", 64, 1)
	s.Threads = intVar("BENCH_THREADS", 1, 1)
	s.AllThreads = intVar("BENCH_ALL_THREADS", ncpu, 1)
	s.H2Conns = intVar("BENCH_H2_CONNECTIONS", 16, 1)
	s.H2Streams = intVar("BENCH_H2_STREAMS", 4, 1)
	s.Modes = listVar("BENCH_MODES", []string{"percore", "allcores"}, []string{"percore", "allcores"})
	s.Targets = listVar("BENCH_TARGETS", allTargets, allTargets)
	s.AllTargets = listVar("BENCH_ALLCORES_TARGETS", h1Targets, allTargets)
	s.Backend = strings.TrimSpace(os.Getenv("BENCH_BACKEND"))
	if s.Backend == "" {
		s.Backend = "fasthttp"
	}
	if s.Backend != "fasthttp" && s.Backend != "nethttp" {
		errs = append(errs, fmt.Sprintf("BENCH_BACKEND=%q: want fasthttp or nethttp", s.Backend))
	}
	s.AllowErrors = os.Getenv("BENCH_ALLOW_ERRORS") == "1"

	cpus := allowedCPUs()
	if len(cpus) == 0 {
		for i := range ncpu {
			cpus = append(cpus, i)
		}
	}
	s.ProxyCPU = strings.TrimSpace(os.Getenv("BENCH_PROXY_CPU"))
	if s.ProxyCPU == "" {
		s.ProxyCPU = strconv.Itoa(cpus[len(cpus)-1])
	}
	s.ClientCPUs = strings.TrimSpace(os.Getenv("BENCH_CLIENT_CPUS"))
	if s.ClientCPUs == "" {
		var rest []int
		for _, c := range cpus {
			if strconv.Itoa(c) != s.ProxyCPU {
				rest = append(rest, c)
			}
		}
		if len(rest) == 0 {
			rest = cpus // one CPU: nothing to separate (the report says so)
		}
		s.ClientCPUs = cpuListString(rest)
	}
	if s.NoH2Reason != "" {
		s.Targets = slices.DeleteFunc(s.Targets, func(t string) bool { return slices.Contains(h2Targets, t) })
		s.AllTargets = slices.DeleteFunc(s.AllTargets, func(t string) bool { return slices.Contains(h2Targets, t) })
	}

	s.DatabaseURL = "postgres://postgres@127.0.0.1:5432/tollgate_bench?sslmode=disable"
	s.RedisURL = "redis://127.0.0.1:6379/15"
	s.RedisPrefix = "tollgate-bench:"
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return s, nil
}

// targetsOf is the targets measured in a mode.
func (s *settings) targetsOf(mode string) []string {
	if mode == "percore" {
		return s.Targets
	}
	return s.AllTargets
}
