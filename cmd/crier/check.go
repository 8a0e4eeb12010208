package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"crier/internal/config"
	"crier/internal/diag"
	"crier/plugins"
	_ "crier/plugins/all" // every plugin registers itself
	"crier/rules"
)

// loadAll loads the config file and compiles its rules and cron jobs,
// collecting every problem. The error is an exitError with code 2.
func loadAll(path string) (*config.Config, *rules.Engine, error) {
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

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("")}
	}
	if fs.NArg() > 0 {
		return usageErr("crier check: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg, eng, err := loadAll(*path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%d rooms, %d rules, %d cron jobs)\n", *path, len(cfg.Rooms), eng.Len(), len(cfg.Cron))
	return nil
}
