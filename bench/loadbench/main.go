// Command loadbench is the engine of bench/load.sh: it measures the Tollgate
// proxy worker against nginx, HAProxy and a bare fasthttp forwarder, per core
// (each proxy pinned to one CPU) and on all cores, and reports requests/s,
// latency percentiles and CPU per request (see bench/README.md).
//
//	loadbench run                     the whole bench (settings from BENCH_* variables)
//	loadbench backend -addrs A,B      the backend every proxy forwards to
//	loadbench worker -metering=false  a proxy worker built from proxy/worker, as
//	                                  `tollgate proxy` builds it, with metering
//	                                  switchable (the feature-cost ladder)
//
// It is run by bench/load.sh, which installs the tools, starts Postgres and
// Redis and builds the binaries first.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadbench run|backend|worker [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(ctx, os.Args[2:])
	case "backend":
		err = cmdBackend(ctx, os.Args[2:])
	case "worker":
		err = cmdWorker(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (want run, backend or worker)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}
