package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"crier/plugins/moderator"
)

// cmdModerator runs the subcommands of `crier moderator`: only "test".
func cmdModerator(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "test" {
		return cmdModeratorTest(args[1:], stdout, stderr)
	}
	const list = "usage: crier moderator test -c FILE [--room ROOM] [--nick NICK] --body TEXT\n\n" +
		"subcommands:\n  test  show every moderator detector's verdict on a message, without connecting\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, list)
		return nil
	}
	return usageErr("crier moderator: the only subcommand is 'test'\n\n%s", list)
}

// cmdModeratorTest is the offline explain: what the moderator's detectors
// make of one message in a room, and what a first offence would get.
func cmdModeratorTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("moderator test", "-c FILE [--room ROOM] [--nick NICK] --body TEXT",
		"Shows the normalised text, every detector's verdict and what the moderator would do\nwith one message as a first offence; nothing is sent.", stderr)
	path := configFlag(fs)
	room := fs.String("room", "", "room JID (its [[moderator.room]] override applies)")
	nick := fs.String("nick", "", "sender's nick (checked by the nick filter too)")
	body := fs.String("body", "", "message body")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("crier moderator test: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	bodySet := false
	fs.Visit(func(f *flag.Flag) { bodySet = bodySet || f.Name == "body" })
	if !bodySet {
		return usageErr("crier moderator test: --body is required")
	}
	cfg, _, err := loadAll(*path, false)
	if err != nil {
		return err
	}
	mc, ok := cfg.Plugins[moderator.Name].(*moderator.Config)
	if !ok {
		return &exitError{code: 1, err: fmt.Errorf("crier moderator test: the moderator plugin is not built in")}
	}
	if !mc.Enabled() {
		fmt.Fprintf(stdout, "note: %s has no [moderator] table: the defaults are shown\n", *path)
	}
	out, err := moderator.Explain(mc, *room, *nick, *body)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	fmt.Fprint(stdout, out)
	return nil
}
