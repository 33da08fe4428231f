package main

import (
	"context"
	"errors"

	"github.com/tradecache/tradecache/internal/config"
	"github.com/tradecache/tradecache/node"
)

// serveCmd runs a node until ctx ends.
func serveCmd(ctx context.Context, e *env, args []string) error {
	var s config.Serve
	if _, err := e.parse(config.ServeCommand("serve", &s), args); err != nil {
		return err
	}
	s.Node.Logger = s.Log.Logger(e.stderr)
	s.Node.Stdout = e.stdout
	s.Node.Version = buildVersion()
	n, err := node.New(s.Node)
	if err != nil {
		return err
	}
	if err := n.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
