package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/tradecache/tradecache/internal/config"
)

// configCheck prints the effective configuration of serve (flags,
// environment, .env and defaults merged) with where each value came from,
// secrets redacted: a table, or JSON with --json. The rows come from the
// same definitions serve loads. A bad or contradictory setting is reported
// with its name and source, exit status 2.
func configCheck(_ context.Context, e *env, args []string) error {
	var s config.Serve
	var asJSON bool
	cmd := config.ServeCommand("config check", &s)
	cmd.Summary = "Prints the effective configuration of serve with the source of each value, secrets redacted."
	cmd.Flags = func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	r, err := e.parse(cmd, args)
	if err != nil {
		return err
	}
	if asJSON {
		out := struct {
			EnvFile       string           `json:"env_file"`
			Settings      []config.Setting `json:"settings"`
			Notifications string           `json:"notifications"`
		}{r.EnvFile, r.Settings, s.Node.Notify.Redacted()}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tFLAG\tENVIRONMENT\tVALUE\tSOURCE")
	for _, st := range r.Settings {
		fmt.Fprintf(tw, "%s\t--%s\t%s\t%s\t%s\n", st.Group, st.Flag, st.Env, st.Value, st.Source)
	}
	tw.Flush()
	envFile := r.EnvFile
	if envFile == "" {
		envFile = "(none)"
	}
	fmt.Fprintf(e.stdout, "\n.env file: %s\nnotifications: %s\n", envFile, s.Node.Notify.Redacted())
	return nil
}
