// Package cliargs parses runc's command line the way runc itself does, so eci-runtime can
// tell which verb it was asked for, find the bundle and container id of create/run/delete,
// and otherwise hand the argv to runc untouched.
//
// runc uses urfave/cli v1: global flags come before the verb; a verb's flags may come before
// or after its positional arguments ("--" ends flags); a flag is written -name or --name, and
// a value flag takes "=value" or the next argument.
package cliargs

import (
	"fmt"
	"strconv"
	"strings"
)

// Globals are runc's global flags (opencontainers/runc main.go).
type Globals struct {
	Debug         bool
	Log           string
	LogFormat     string // "text" (default) or "json"
	Root          string
	SystemdCgroup bool
	Rootless      string
}

// Invocation is a parsed runc command line.
type Invocation struct {
	Globals Globals
	// Verb is the runc command ("create", "state", ...), or "" when none was given
	// (for example "runc --version").
	Verb string
	// Help and Version are set when the global -h/--help or -v/--version flag was given.
	Help, Version bool
	// Args are the verb's arguments as given, flags included.
	Args []string

	// Filled for create, run and delete.
	ID     string
	Bundle string // create/run: --bundle, "" means the current directory
	Force  bool   // delete --force
}

type flagKind int

const (
	boolFlag flagKind = iota
	valueFlag
)

// globalFlags maps each global flag name (and alias) to its kind.
var globalFlags = map[string]flagKind{
	"debug": boolFlag, "log": valueFlag, "log-format": valueFlag, "root": valueFlag,
	"systemd-cgroup": boolFlag, "rootless": valueFlag, "criu": valueFlag,
	"help": boolFlag, "h": boolFlag, "version": boolFlag, "v": boolFlag,
}

// verbFlags are the flags of the verbs whose arguments eci-runtime must understand.
var verbFlags = map[string]map[string]flagKind{
	"create": {
		"bundle": valueFlag, "b": valueFlag, "console-socket": valueFlag, "pidfd-socket": valueFlag,
		"pid-file": valueFlag, "no-pivot": boolFlag, "no-new-keyring": boolFlag,
		"preserve-fds": valueFlag, "help": boolFlag, "h": boolFlag,
	},
	"run": {
		"bundle": valueFlag, "b": valueFlag, "console-socket": valueFlag, "pidfd-socket": valueFlag,
		"detach": boolFlag, "d": boolFlag, "keep": boolFlag, "pid-file": valueFlag,
		"no-subreaper": boolFlag, "no-pivot": boolFlag, "no-new-keyring": boolFlag,
		"preserve-fds": valueFlag, "help": boolFlag, "h": boolFlag,
	},
	"delete": {"force": boolFlag, "f": boolFlag, "help": boolFlag, "h": boolFlag},
}

// splitFlag turns "-name", "--name" or "--name=value" into its parts; ok is false for an
// argument that is not a flag.
func splitFlag(arg string) (name, value string, hasValue, ok bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", "", false, false
	}
	s := strings.TrimPrefix(strings.TrimPrefix(arg, "-"), "-")
	if s == "" || strings.HasPrefix(s, "-") {
		return "", "", false, false
	}
	name, value, hasValue = strings.Cut(s, "=")
	return name, value, hasValue, true
}

func parseBool(name, value string) (bool, error) {
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, fmt.Errorf("invalid boolean value %q for flag -%s", value, name)
	}
	return b, nil
}

// Parse parses argv without argv[0]. A global flag it does not know is an error, as it is
// for runc. Arguments of verbs other than create, run and delete are kept but not parsed.
func Parse(args []string) (*Invocation, error) {
	inv := &Invocation{Globals: Globals{LogFormat: "text"}}
	i := 0
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		name, value, hasValue, ok := splitFlag(arg)
		if !ok {
			break
		}
		kind, known := globalFlags[name]
		if !known {
			return nil, fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if kind == valueFlag && !hasValue {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			value = args[i]
		}
		if err := inv.setGlobal(name, value, hasValue); err != nil {
			return nil, err
		}
	}
	if i < len(args) {
		inv.Verb = args[i]
		inv.Args = args[i+1:]
	}
	if inv.Globals.LogFormat != "text" && inv.Globals.LogFormat != "json" {
		return nil, fmt.Errorf("invalid log-format: %s", inv.Globals.LogFormat)
	}
	if flags, ok := verbFlags[inv.Verb]; ok {
		if err := inv.parseVerb(flags); err != nil {
			return nil, fmt.Errorf("%s: %w", inv.Verb, err)
		}
	}
	return inv, nil
}

func (inv *Invocation) setGlobal(name, value string, hasValue bool) error {
	g := &inv.Globals
	var err error
	boolValue := func() bool {
		if !hasValue {
			return true
		}
		var b bool
		b, err = parseBool(name, value)
		return b
	}
	switch name {
	case "debug":
		g.Debug = boolValue()
	case "systemd-cgroup":
		g.SystemdCgroup = boolValue()
	case "help", "h":
		inv.Help = boolValue()
	case "version", "v":
		inv.Version = boolValue()
	case "log":
		g.Log = value
	case "log-format":
		g.LogFormat = value
	case "root":
		g.Root = value
	case "rootless":
		g.Rootless = value
	}
	return err
}

func (inv *Invocation) parseVerb(flags map[string]flagKind) error {
	var positional []string
	args := inv.Args
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		name, value, hasValue, ok := splitFlag(arg)
		if !ok {
			positional = append(positional, arg)
			continue
		}
		kind, known := flags[name]
		if !known {
			return fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if kind == valueFlag && !hasValue {
			if i+1 >= len(args) {
				return fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			value = args[i]
		}
		switch name {
		case "bundle", "b":
			inv.Bundle = value
		case "force", "f":
			inv.Force = true
			if hasValue {
				b, err := parseBool(name, value)
				if err != nil {
					return err
				}
				inv.Force = b
			}
		case "help", "h":
			inv.Help = true
		}
	}
	if inv.Help {
		return nil
	}
	if len(positional) != 1 {
		return fmt.Errorf("requires exactly 1 argument, the container id; got %d: %q", len(positional), positional)
	}
	inv.ID = positional[0]
	if err := ValidateID(inv.ID); err != nil {
		return err
	}
	return nil
}

// ValidateID applies runc's rule for container ids (letters, digits, "_+-.", not "." or
// ".."), so an id can never escape a state directory.
func ValidateID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 1024 {
		return fmt.Errorf("invalid container id %q", id)
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_' || c == '+' || c == '-' || c == '.':
		default:
			return fmt.Errorf("invalid container id %q: character %q is not allowed", id, c)
		}
	}
	return nil
}
