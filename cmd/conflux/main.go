// Command conflux is a self-hosted customer data platform compatible with
// Segment's Tracking API. `conflux serve` runs it; the other subcommands
// help operate it. Each flag can also be set by the environment variable
// named in its help.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks an error already explained by the flag package's output.
var errUsage = errors.New("usage")

const usage = `conflux — a Segment-compatible customer data platform

Usage:
  conflux serve  [flags]   run the server (Tracking API, Config API, log)
  conflux check  [flags]   validate a config file and exit
  conflux tail   [flags]   follow a source's events live
  conflux replay [flags]   resend dead-lettered events, with progress
  conflux bench ingest [flags]   load-test the Tracking API
  conflux bench deliver [flags]  API in, webhook out; -isolation beside a failing destination
  conflux bench dedup  [flags]   measure the dedup index (50M ids by default)
  conflux version

Run 'conflux <command> -h' for a command's flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "check":
		err = check(args[1:], stdout, stderr)
	case "tail":
		err = tail(ctx, args[1:], stdout, stderr)
	case "bench":
		err = bench(ctx, args[1:], stdout, stderr)
	case "replay":
		err = replay(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "conflux", version())
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "conflux: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintln(stderr, "conflux:", err)
		return 1
	}
}

// flagSet returns a FlagSet whose flags fall back to environment variables.
func flagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("conflux "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// env returns the environment variable's value, or def.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// parseFlags parses args, turning a parse error into errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
