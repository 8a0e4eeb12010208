package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"crier/internal/config"
	"crier/internal/diag"
	"crier/plugins"
	_ "crier/plugins/all" // every plugin registers itself
	"crier/rules"
)

// loadAll loads the config file and compiles its rules and cron jobs,
// collecting every problem. forRun adds what this build cannot run
// (refusedByBuild), for check and run. The error is an exitError with
// code 2.
func loadAll(path string, forRun bool) (*config.Config, *rules.Engine, error) {
	cfg, err := config.Load(path)
	var all diag.List
	if err != nil {
		var l diag.List
		if !asList(err, &l) {
			return nil, nil, &exitError{code: 2, err: err}
		}
		all.Merge(l)
	}
	var eng *rules.Engine
	if cfg != nil {
		var errs diag.List
		rooms := make([]string, 0, len(cfg.Rooms))
		for _, r := range cfg.Rooms {
			rooms = append(rooms, r.Addr().Bare().String())
		}
		eng, errs = rules.Compile(cfg.Rules, rules.Options{SenderLimit: cfg.Limits.SenderReplies, Rooms: rooms})
		all.Merge(errs)
		_, cerrs := rules.CompileCron(cfg.Cron)
		all.Merge(cerrs)
		if forRun {
			all.Merge(refusedByBuild(cfg, haveEmbedded))
		}
		// Plugins check their own tables (templates, subjects).
		if _, err := plugins.Build(cfg.Plugins, cfg.PluginCore()); err != nil {
			var l diag.List
			if asList(err, &l) {
				all.Merge(l)
			} else {
				all.Add(diag.Error{File: cfg.Path, Msg: err.Error()})
			}
		}
	}
	if err := all.Err(); err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	return cfg, eng, nil
}

// refusedByBuild reports what a valid config asks and this build cannot
// do, so that `crier check` refuses what `crier run` would: [embedded]
// servers in a build without them (-tags noembed).
func refusedByBuild(cfg *config.Config, embedded bool) diag.List {
	var l diag.List
	if !embedded && (cfg.Embedded.XMPP || cfg.Embedded.NATS) {
		l.Add(diag.Error{File: cfg.Path, Line: tableLine(cfg.Path, "embedded"),
			Msg: "embedded: this build has no embedded servers (built with -tags noembed); turn [embedded] off or use a default build"})
	}
	return l
}

// tableLine returns the line of the file at path where the table name
// starts ("[name]", "[name.sub]" or "[[name.sub]]"), or 0.
func tableLine(path, name string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimLeft(strings.TrimSpace(line), "[")
		if len(t) < len(strings.TrimSpace(line)) && (strings.HasPrefix(t, name+"]") || strings.HasPrefix(t, name+".")) {
			return i + 1
		}
	}
	return 0
}

func asList(err error, l *diag.List) bool {
	if x, ok := err.(diag.List); ok {
		*l = x
		return true
	}
	return false
}

func configFlag(fs *flag.FlagSet) *string {
	p := fs.String("c", "config.toml", "config file")
	fs.StringVar(p, "config", "config.toml", "config file (same as -c)")
	return p
}

// cmdCheck validates a config file as `crier run` would before starting,
// without connecting anywhere.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "[-c FILE]", "Validates the config file as `crier run` does before it starts, without connecting\nanywhere, and prints every problem as FILE:LINE: message. Exit 0 valid, 2 invalid.", stderr)
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("crier check: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg, eng, err := loadAll(*path, true)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d rooms, %d rules, %d cron jobs)\n", *path, len(cfg.Rooms), eng.Len(), len(cfg.Cron))
	return nil
}
