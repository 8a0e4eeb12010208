// Command crier is an XMPP bot daemon: it signs in over TCP or BOSH, stays in
// its rooms, answers iq requests, and replies to messages by rules.
//
//	crier run   [-c FILE] [-log-format text|json] [-log-level info]
//	crier check [-c FILE]
//	crier rules test -c FILE [--room ROOM] [--nick NICK] [--from JID] [--role ROLE] --body TEXT
//	crier send  [-c FILE] --to JID [--type headline|chat|normal|groupchat] [--subject S] [BODY|-]
//	crier version
//
// Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// it comes from the module's build information.
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		v := bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				if v == "" || v == "(devel)" {
					v = "devel"
				}
				v += "+" + s.Value[:12]
			}
		}
		if v != "" && v != "(devel)" {
			return v
		}
	}
	return "devel"
}

// exitError carries an exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

const usage = `usage:
  crier run   [-c FILE] [-log-format text|json] [-log-level debug|info|warn|error]
  crier check [-c FILE]
  crier rules test -c FILE [--room ROOM] [--nick NICK] [--from JID] [--role ROLE] --body TEXT
  crier send  [-c FILE] --to JID [--type headline|chat|normal|groupchat] [--subject S] [BODY|-]
  crier version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stderr)
	case "check":
		err = cmdCheck(args[1:], stdout, stderr)
	case "rules":
		if len(args) < 2 || args[1] != "test" {
			err = usageErr("crier rules: the only subcommand is 'test'\n%s", usage)
		} else {
			err = cmdRulesTest(args[2:], stdout)
		}
	case "send":
		err = cmdSend(args[1:], os.Stdin, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "crier %s\n", buildVersion())
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = usageErr("crier: unknown command %q\n%s", args[0], usage)
	}
	if err == nil {
		return 0
	}
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
