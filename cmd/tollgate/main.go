// Command tollgate is the one binary of the platform: the control plane, the
// proxy workers, migrations and a laptop mode, chosen by subcommand.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

const usage = `tollgate: multi-tenant API gateway platform

Usage:
  tollgate control                 run the control plane (management API, config publisher)
  tollgate proxy                   run a proxy worker (data plane)
  tollgate migrate                 apply database migrations
  tollgate tenant create -name N -slug S
                                   create a tenant and print its first admin token
  tollgate apply -f FILE|DIR [-dry-run] [-prune]
                                   make a tenant's upstreams, APIs, plans and portal match FILE
  tollgate export [-o yaml|json]   write a tenant's configuration in the format apply reads
  tollgate dev [flags]             everything in one process with a seeded demo tenant
  tollgate backend -addr A -name N run a small demo HTTP backend

Configuration comes from TOLLGATE_* environment variables (see README.md);
apply and export talk to TOLLGATE_URL with TOLLGATE_TOKEN (a tenant admin token).
`

// run dispatches a subcommand. It returns when the command is done or ctx is
// cancelled (SIGINT, SIGTERM), after a graceful shutdown.
func run(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "control":
		return cmdControl(ctx, rest, getenv)
	case "proxy":
		return cmdProxy(ctx, rest, getenv)
	case "migrate":
		return cmdMigrate(ctx, rest, stdout, getenv)
	case "tenant":
		return cmdTenant(ctx, rest, stdout, getenv)
	case "apply":
		return cmdApply(ctx, rest, stdout, getenv)
	case "export":
		return cmdExport(ctx, rest, stdout, getenv)
	case "dev":
		return cmdDev(ctx, rest, stdout, getenv)
	case "backend":
		return cmdBackend(ctx, rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stdout, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
