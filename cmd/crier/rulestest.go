package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"mellium.im/xmpp/jid"

	"crier/rules"
)

// cmdRules runs the subcommands of `crier rules`: only "test" for now.
func cmdRules(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "test" {
		return cmdRulesTest(args[1:], stdout, stderr)
	}
	const list = "usage: crier rules test -c FILE [--room ROOM] [--nick NICK] [--from JID] [--role ROLE] --body TEXT\n\n" +
		"subcommands:\n  test  show which rules match a message and what they would do, without connecting\n"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, list)
		return nil
	}
	return usageErr("crier rules: the only subcommand is 'test'\n\n%s", list)
}

// cmdRulesTest is the dry run: which rules match a message, and what they
// would do. It never connects anywhere.
func cmdRulesTest(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("rules test", "-c FILE [--room ROOM] [--nick NICK] [--from JID] [--role ROLE] --body TEXT",
		"Shows which rules match one message and the action and reply each would produce;\nnothing is sent. Without --room the message is a one-to-one chat.", stderr)
	path := configFlag(fs)
	room := fs.String("room", "", "room JID (without it: a one-to-one chat message)")
	nick := fs.String("nick", "", "sender's nick (default: the localpart of --from, or \"user\")")
	from := fs.String("from", "", "sender's JID")
	role := fs.String("role", "participant", "sender's MUC role")
	aff := fs.String("affiliation", "none", "sender's MUC affiliation")
	typ := fs.String("type", "", "message type (default groupchat with --room, else chat)")
	body := fs.String("body", "", "message body")
	botNick := fs.String("bot-nick", "", "the bot's nick in the room (default: from the config)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("crier rules test: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	bodySet := false
	fs.Visit(func(f *flag.Flag) { bodySet = bodySet || f.Name == "body" })
	if !bodySet {
		return usageErr("crier rules test: --body is required")
	}
	cfg, eng, err := loadAll(*path, false)
	if err != nil {
		return err
	}
	m := rules.Message{Kind: "message", Body: *body, BotJID: cfg.XMPP.Addr().Bare().String(), Role: *role, Affiliation: *aff}
	n := *nick
	if n == "" && *from != "" {
		if j, err := jid.Parse(*from); err == nil {
			n = j.Localpart()
			if *room != "" && j.Bare().String() == *room {
				n = j.Resourcepart()
			}
		}
	}
	if n == "" {
		n = "user"
	}
	m.Nick = n
	if *room != "" {
		m.Type = "groupchat"
		m.Room = *room
		m.From = *room + "/" + n
		m.BotNick = *botNick
		if m.BotNick == "" {
			for _, r := range cfg.Rooms {
				if r.Addr().Bare().String() == *room {
					m.BotNick = r.Nick
				}
			}
		}
		if *from != "" {
			if j, err := jid.Parse(*from); err == nil && j.Bare().String() != *room {
				m.RealJID = j.Bare().String()
			}
		}
	} else {
		m.Type = "chat"
		m.From = *from
		if m.From == "" {
			m.From = n + "@" + cfg.XMPP.Addr().Domainpart() + "/test"
		}
		m.Role, m.Affiliation = "", ""
	}
	if *typ != "" {
		m.Type = *typ
	}
	rules.DryRun(stdout, eng, m)
	return nil
}
