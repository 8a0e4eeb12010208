package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mellium.im/xmpp/jid"

	"crier/rules"
)

// cmdRulesTest is the dry run: which rules match a message, and what they
// would do. It never connects anywhere.
func cmdRulesTest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rules test", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	path := configFlag(fs)
	room := fs.String("room", "", "room JID (without it: a one-to-one chat message)")
	nick := fs.String("nick", "", "sender's nick (default: the localpart of --from, or \"user\")")
	from := fs.String("from", "", "sender's JID")
	role := fs.String("role", "participant", "sender's MUC role")
	aff := fs.String("affiliation", "none", "sender's MUC affiliation")
	typ := fs.String("type", "", "message type (default groupchat with --room, else chat)")
	body := fs.String("body", "", "message body")
	botNick := fs.String("bot-nick", "", "the bot's nick in the room (default: from the config)")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("")}
	}
	if fs.NArg() > 0 {
		return usageErr("crier rules test: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	bodySet := false
	fs.Visit(func(f *flag.Flag) { bodySet = bodySet || f.Name == "body" })
	if !bodySet {
		return usageErr("crier rules test: --body is required")
	}
	cfg, eng, err := loadAll(*path)
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
