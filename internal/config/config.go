// Package config is the one loader of tradecache's settings: every command
// declares the named groups of settings it uses (redis, keys, exchange,
// market, account, http, log, notify, node…) plus its own flags, and the
// loader fills them from the command line, the environment and a .env
// file. Precedence: flag, then environment, then .env, then the default.
//
// A command sees only its own groups: a bad TRADECACHE_WS_TOKEN cannot
// break `keys kinds`, and `-h` lists only what the command takes. Flags
// are accepted before and after positional arguments. Every setting is a
// Field of a Group, so `config check` prints its table from the same
// definitions the loader uses. Errors name the flag, its environment
// variable, the value (secrets redacted) and where it came from.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/joho/godotenv"
)

// Field is one setting: a flag, its environment variable, its default and
// how its text becomes a value.
type Field struct {
	Flag    string // flag name without dashes
	Env     string // environment variable (also read from .env)
	Default string // the value when nothing sets it
	Usage   string
	Secret  bool // never printed: shown as "(redacted)"
	// Redact, when set, shows the value without its secret part (a URL's
	// password) instead of hiding it whole.
	Redact func(string) string
	// Set parses and stores the value; its error says what is wrong.
	Set func(string) error
	// Fallback, when set, supplies a value when neither the flag nor Env
	// is set (Jesse's REDIS_HOST/PORT/…); it returns the value and the
	// name of the variables it came from.
	Fallback func(lookup func(env string) (string, string, bool)) (value, source string, ok bool, err error)
}

// isBool: a field whose default is a boolean is a bool flag (--demo).
func (f Field) isBool() bool { return f.Default == "false" || f.Default == "true" }

// Shown is how the value v of f may be printed.
func (f Field) Shown(v string) string {
	switch {
	case v == "":
		return ""
	case f.Secret:
		return "(redacted)"
	case f.Redact != nil:
		return f.Redact(v)
	}
	return v
}

// Group is a named set of settings that several commands share.
type Group struct {
	Name   string
	Fields []Field
	// Finish, when set, runs after every field of the group is set: values
	// derived from several fields and checks across them.
	Finish func() error
}

// Command is what a command takes.
type Command struct {
	Name    string // "keys audit"
	Args    string // synopsis of the positional arguments, "KIND [PART...]"
	Summary string // one line on what it does
	Groups  []Group
	Flags   func(fs *flag.FlagSet) // the command's own flags; may be nil
	// Check, when set, runs last: contradictions across groups. Its error
	// should name both settings (Result.Describe helps).
	Check func(r *Result) error
	// MaxArgs bounds the positional arguments (-1: any number).
	MaxArgs int
}

// Setting is one field's effective value and where it came from.
type Setting struct {
	Group  string `json:"group"`
	Flag   string `json:"flag"`
	Env    string `json:"env"`
	Value  string `json:"value"` // redacted when secret
	Source string `json:"source"`
}

// Result is what Parse found besides the values stored by the fields.
type Result struct {
	Args     []string  // positional arguments, in order
	Settings []Setting // every field of every group, in declaration order
	EnvFile  string    // the .env file read, "" if none
	set      map[string]bool
}

// Setting returns the setting of flag name.
func (r *Result) Setting(name string) (Setting, bool) {
	for _, s := range r.Settings {
		if s.Flag == name {
			return s, true
		}
	}
	return Setting{}, false
}

// IsSet reports whether flag name was set by a flag, the environment or
// .env (not left at its default).
func (r *Result) IsSet(name string) bool { return r.set[name] }

// Describe is "--name VALUE (from SOURCE)", for errors about a setting.
func (r *Result) Describe(name string) string {
	s, ok := r.Setting(name)
	if !ok {
		return "--" + name
	}
	v := s.Value
	if v == "" || v == "true" {
		return fmt.Sprintf("--%s (from %s)", name, s.Source)
	}
	return fmt.Sprintf("--%s %s (from %s)", name, v, s.Source)
}

// FieldError is a bad value for one field.
type FieldError struct {
	Field  string // flag name
	Env    string // environment variable
	Value  string // redacted when secret
	Source string
	Err    error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("--%s (%s) = %q from %s: %v", e.Field, e.Env, e.Value, e.Source, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// ErrHelp is returned when -h or --help was asked for; the usage was
// printed.
var ErrHelp = flag.ErrHelp

// strValue holds a flag's text until every source is known; bool fields
// take no argument on the command line.
type strValue struct {
	s      string
	isBool bool
}

func (v *strValue) String() string     { return v.s }
func (v *strValue) Set(s string) error { v.s = s; return nil }
func (v *strValue) IsBoolFlag() bool   { return v.isBool }

// EnvFileEnv names the .env file when --env-file is not given.
const EnvFileEnv = "TRADECACHE_ENV_FILE"

// Parse fills cmd's groups and own flags from args (without the command's
// name), getenv and a .env file: the one in the working directory, or the
// one --env-file / TRADECACHE_ENV_FILE names (which must then exist).
// Usage and help go to out. Bad fields are *FieldErrors, several joined
// with errors.Join; a misplaced or unknown flag is an error naming it.
func (cmd Command) Parse(args []string, getenv func(string) string, out io.Writer) (*Result, error) {
	r := &Result{set: map[string]bool{}}
	fs := flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var envFile *string
	if len(cmd.Groups) > 0 {
		envFile = fs.String("env-file", "", "file of KEY=value settings that fills what the environment lacks ("+EnvFileEnv+"; default .env when present)")
	}
	var vals []*strValue
	var fields []Field
	var groupOf []string
	for _, g := range cmd.Groups {
		for _, f := range g.Fields {
			v := &strValue{s: f.Default, isBool: f.isBool()}
			fs.Var(v, f.Flag, f.Usage)
			vals = append(vals, v)
			fields = append(fields, f)
			groupOf = append(groupOf, g.Name)
		}
	}
	if cmd.Flags != nil {
		cmd.Flags(fs)
	}
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		cmd.PrintUsage(out, fs)
		return r, ErrHelp
	}
	if err != nil {
		return r, fmt.Errorf("%s: %w (run 'tradecache %s -h' for its flags)", cmd.Name, err, cmd.Name)
	}
	r.Args = pos
	if cmd.MaxArgs >= 0 && len(pos) > cmd.MaxArgs {
		extra := pos[cmd.MaxArgs:]
		return r, fmt.Errorf("%s: unexpected argument %q (usage: tradecache %s %s)", cmd.Name, extra[0], cmd.Name, cmd.Args)
	}
	if len(cmd.Groups) == 0 {
		return r, nil
	}

	setByFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setByFlag[f.Name] = true })
	dotenv, err := readEnvFile(*envFile, setByFlag["env-file"], getenv)
	if err != nil {
		return r, err
	}
	if dotenv != nil {
		r.EnvFile = dotenv.path
	}
	lookup := func(env string) (string, string, bool) {
		if v := getenv(env); v != "" {
			return v, "env " + env, true
		}
		if dotenv != nil {
			if v, ok := dotenv.vals[env]; ok && v != "" {
				return v, ".env " + env, true
			}
		}
		return "", "", false
	}
	var errs []error
	for i, f := range fields {
		v, src := vals[i].s, "flag --"+f.Flag
		switch {
		case setByFlag[f.Flag]:
		default:
			if ev, esrc, ok := lookup(f.Env); ok {
				v, src = ev, esrc
				break
			}
			src = "default"
			if f.Fallback != nil {
				fv, fsrc, ok, err := f.Fallback(lookup)
				if err != nil {
					errs = append(errs, &FieldError{f.Flag, f.Env, "", fsrc, err})
					continue
				}
				if ok {
					v, src = fv, fsrc
				}
			}
		}
		if src != "default" {
			r.set[f.Flag] = true
		}
		r.Settings = append(r.Settings, Setting{Group: groupOf[i], Flag: f.Flag, Env: f.Env, Value: f.Shown(v), Source: src})
		if err := f.Set(v); err != nil {
			errs = append(errs, &FieldError{f.Flag, f.Env, f.Shown(v), src, err})
		}
	}
	for _, g := range cmd.Groups {
		if g.Finish != nil {
			if err := g.Finish(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 && cmd.Check != nil {
		if err := cmd.Check(r); err != nil {
			errs = append(errs, err)
		}
	}
	return r, errors.Join(errs...)
}

// parseInterspersed parses flags before, between and after positional
// arguments; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return pos, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

type envFile struct {
	path string
	vals map[string]string
}

// readEnvFile reads the .env file: an explicit one (--env-file or
// TRADECACHE_ENV_FILE) must be readable; ./.env is read when present.
func readEnvFile(flagPath string, byFlag bool, getenv func(string) string) (*envFile, error) {
	path, explicit := ".env", false
	switch {
	case byFlag:
		path, explicit = flagPath, true
	case getenv(EnvFileEnv) != "":
		path, explicit = getenv(EnvFileEnv), true
	}
	if path == "" {
		return nil, nil
	}
	m, err := godotenv.Read(path)
	switch {
	case err == nil:
		return &envFile{path: path, vals: m}, nil
	case explicit || !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	return nil, nil
}

// PrintUsage prints the command's usage: its own flags, then each group's.
func (cmd Command) PrintUsage(w io.Writer, fs *flag.FlagSet) {
	if fs == nil {
		fs = flag.NewFlagSet(cmd.Name, flag.ContinueOnError)
		if cmd.Flags != nil {
			cmd.Flags(fs)
		}
	}
	fmt.Fprintf(w, "usage: tradecache %s [flags]", cmd.Name)
	if cmd.Args != "" {
		fmt.Fprintf(w, " %s", cmd.Args)
	}
	fmt.Fprintln(w)
	if cmd.Summary != "" {
		fmt.Fprintf(w, "\n%s\n", cmd.Summary)
	}
	inGroup := map[string]bool{"env-file": true}
	for _, g := range cmd.Groups {
		for _, f := range g.Fields {
			inGroup[f.Flag] = true
		}
	}
	var own []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !inGroup[f.Name] {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintln(w, "\nflags:")
		for _, f := range own {
			printFlag(w, f.Name, f.DefValue, f.Usage, "", isBoolFlag(f))
		}
	}
	for _, g := range cmd.Groups {
		fmt.Fprintf(w, "\n%s flags:\n", g.Name)
		for _, f := range g.Fields {
			printFlag(w, f.Flag, f.Default, f.Usage, f.Env, f.isBool())
		}
	}
	if len(cmd.Groups) > 0 {
		fmt.Fprintf(w, "\nEach group flag also reads its environment variable, then .env (--env-file, %s). Flags go before or after the arguments.\n", EnvFileEnv)
	}
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func printFlag(w io.Writer, name, def, usage, env string, isBool bool) {
	arg := ""
	if !isBool {
		arg = " value"
	}
	fmt.Fprintf(w, "  --%s%s\n", name, arg)
	line := "    \t" + usage
	var notes []string
	if env != "" {
		notes = append(notes, env)
	}
	if def != "" && def != "false" && def != "0" {
		notes = append(notes, "default "+def)
	}
	if len(notes) > 0 {
		line += " (" + strings.Join(notes, "; ") + ")"
	}
	fmt.Fprintln(w, strings.ReplaceAll(line, "\t", ""))
}

// Flags lists every flag of groups, sorted: for tests and docs.
func Flags(groups ...Group) []string {
	m := map[string]bool{}
	for _, g := range groups {
		for _, f := range g.Fields {
			m[f.Flag] = true
		}
	}
	return slices.Sorted(maps.Keys(m))
}
