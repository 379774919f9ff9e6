// Command sketchd runs the sketchd service: an embedded (or external) NATS
// in, event-time sketches in Badger, a REST query API out. It only wires the
// packages together; see run.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal now kills the process
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, errHelp), errors.Is(err, errVersion):
	default:
		fmt.Fprintln(os.Stderr, "sketchd:", err)
		os.Exit(1)
	}
}
