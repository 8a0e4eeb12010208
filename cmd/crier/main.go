// Command crier is an XMPP bot daemon: it signs in over TCP or BOSH, stays in
// its rooms, answers iq requests, and replies to messages by rules.
//
//	crier run   [-c FILE] [-log-format text|json] [-log-level info]
//	crier check [-c FILE]
//	crier rules test -c FILE [--room ROOM] [--nick NICK] [--from JID] [--role ROLE] --body TEXT
//	crier moderator test -c FILE [--room ROOM] [--nick NICK] --body TEXT
//	crier send  [-c FILE] [--jid JID] [--address HOST:PORT] --to JID [--to JID...] [BODY|-]
//	crier state migrate [-c FILE] --from file|kv --to file|kv [--dry-run] [--overwrite]
//	crier version
//	crier help [COMMAND]
//
// Every command takes --help (or -h) and prints its flags. Exit codes: 0
// ok, 1 runtime failure, 2 bad usage or bad config.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"crier/internal/buildinfo"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// it comes from the module's build information.
var version = ""

// buildVersion is the version crier reports in logs and to the bot
// (XEP-0092 answers): the version with the short VCS revision.
func buildVersion() string {
	info := buildinfo.Read(version)
	if info.Revision == buildinfo.Unknown {
		return info.Version
	}
	return info.Version + "+" + info.Short()
}

// exitError carries an exit code out of a subcommand. An empty err prints
// nothing (the flag package already said what was wrong).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// errHelp ends a command that printed its help on request: exit 0.
var errHelp = &exitError{code: 0, err: errors.New("")}

// command is one subcommand: its name, its synopsis (the arguments after
// the name), a one-line summary for the command list, and what runs it.
type command struct {
	name, synopsis, summary string
	run                     func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is the command list, in the order `crier help` prints it.
var commands = []command{
	{"run", "[-c FILE] [-log-format text|json] [-log-level debug|info|warn|error]",
		"run the daemon (the config is ./config.toml unless -c FILE)",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) error { return cmdRun(args, stdout, stderr) }},
	{"check", "[-c FILE]",
		"validate a config file and print every problem as FILE:LINE: message",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
			return cmdCheck(args, stdout, stderr)
		}},
	{"rules", "test -c FILE [--room ROOM] [--nick NICK] [--from JID] [--role ROLE] --body TEXT",
		"show which rules match a message and what they would do, without connecting",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
			return cmdRules(args, stdout, stderr)
		}},
	{"moderator", "test -c FILE [--room ROOM] [--nick NICK] --body TEXT",
		"show every moderator detector's verdict on a message, without connecting",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
			return cmdModerator(args, stdout, stderr)
		}},
	{"send", "[-c FILE] [--jid JID] [--address HOST:PORT] --to JID [--to JID...] [--type T] [--subject S] [BODY|-]",
		"send a message to one or more JIDs; exit 0 once the server acknowledged every one",
		func(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
			return cmdSend(args, stdin, stdout, stderr)
		}},
	{"state", stateSynopsis,
		"copy the state store between the bbolt file and the [ha] NATS KV bucket",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
			return cmdState(args, stdout, stderr)
		}},
	{"version", "",
		"print the version, the VCS revision and the Go version",
		func(args []string, _ io.Reader, stdout, stderr io.Writer) error {
			return cmdVersion(args, stdout, stderr)
		}},
	{"help", "[COMMAND]", "print this list, or the flags of one command", nil}, // run by run: it reads this list
}

// usage is the command list `crier help` prints.
func usage() string {
	var b strings.Builder
	b.WriteString("crier is an XMPP bot daemon: it signs in to an XMPP server, stays in its rooms\nand replies to messages by rules.\n\n")
	b.WriteString("usage: crier COMMAND [FLAGS]\n\ncommands:\n")
	for _, c := range commands {
		name := c.name
		switch c.name {
		case "rules", "moderator":
			name += " test"
		case "state":
			name += " migrate"
		}
		fmt.Fprintf(&b, "  %-14s %s\n", name, c.summary)
	}
	b.WriteString("\n`crier COMMAND --help` prints the flags of a command.\n")
	b.WriteString("exit codes: 0 ok, 1 runtime failure (such as a message not delivered),\n2 bad usage or bad config.\n")
	return b.String()
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command of args and returns the process's exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	var err error
	switch name := args[0]; name {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage())
	case "-version", "--version":
		err = cmdVersion(nil, stdout, stderr)
	case "help":
		err = cmdHelp(args[1:], stdout, stderr)
	default:
		c, ok := lookup(name)
		if !ok {
			err = usageErr("crier: unknown command %q\n\n%s", name, usage())
			break
		}
		err = c.run(args[1:], stdin, stdout, stderr)
	}
	if err == nil {
		return 0
	}
	return runWith(err, stderr)
}

// runWith prints a command's error on stderr and returns its exit code.
func runWith(err error, stderr io.Writer) int {
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, err)
	return 1
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// newFlags returns the flag set of a command, printing its usage to
// stderr on a bad flag. parseFlags prints it to stdout for --help.
func newFlags(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: crier %s %s\n", name, synopsis)
		if about != "" {
			fmt.Fprintf(w, "\n%s\n", about)
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parseFlags parses args into fs: --help or -h prints the command's usage
// on stdout and returns errHelp (exit 0); a bad flag, already reported by
// the flag package with the usage, is exit 2.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	// The flag package prints the usage itself, to the error output; the
	// help asked for goes to stdout instead.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		usage()
		return errHelp
	}
	usage()
	return &exitError{code: 2, err: errors.New("")}
}

// cmdHelp prints the command list, or one command's usage and flags.
func cmdHelp(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage())
		return nil
	}
	c, ok := lookup(args[0])
	if !ok || c.run == nil {
		return usageErr("crier help: unknown command %q\n\n%s", args[0], usage())
	}
	rest := append(args[1:len(args):len(args)], "--help")
	return c.run(rest, strings.NewReader(""), stdout, stderr)
}

// cmdVersion prints the version, the VCS revision and the Go version.
func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "", "Prints the version, the VCS revision the binary was built from (\"-modified\"\nwhen the tree had uncommitted changes) and the Go toolchain that built it.", stderr)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("crier version: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	info := buildinfo.Read(version)
	fmt.Fprintf(stdout, "crier %s\nrevision: %s\ngo: %s %s/%s\n", info.Version, info.Revision, info.GoVersion, runtime.GOOS, runtime.GOARCH)
	return nil
}
