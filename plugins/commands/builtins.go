package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"crier/plugins"
)

// builtinCommands are the plugin's own commands.
func (p *Plugin) builtinCommands() []plugins.Command {
	room := plugins.Arg{Name: "room", Label: "Room", Desc: "the room's bare JID", Kind: plugins.ArgJID, Required: true}
	return []plugins.Command{
		{
			Name: "help", Summary: "list the commands you may run, or explain one",
			Args:    []plugins.Arg{{Name: "command", Desc: "a command to explain"}},
			Example: plugins.Example{Line: "help join", Want: "join ROOM [NICK]"},
			Run:     p.runHelp,
		},
		{
			Name: "version", Summary: "show crier's version",
			Example: plugins.Example{Line: "version", Want: "crier "},
			Run: func(context.Context, *plugins.Call) (plugins.Reply, error) {
				v := p.host.Status().Version
				if v == "" {
					v = "(unknown version)"
				}
				return plugins.Reply{Text: "crier " + v}, nil
			},
		},
		{
			Name: "uptime", Summary: "show how long crier has been running and connected",
			Example: plugins.Example{Line: "uptime", Want: "up "},
			Run:     p.runUptime,
		},
		{
			Name: "status", Summary: "show the connection, stream management, rooms, outbox and plugins",
			Example: plugins.Example{Line: "status", Want: "connection:"},
			Run:     p.runStatus,
		},
		{
			Name: "rooms", Summary: "list the rooms and crier's state in each",
			Example: plugins.Example{Line: "rooms", Want: "lobby@conference.example.org"},
			Run:     p.runRooms,
		},
		{
			Name: "join", Summary: "join a room and stay there across restarts",
			Level: plugins.Admin, Global: true,
			Args: []plugins.Arg{room,
				{Name: "nick", Label: "Nick", Desc: "the nick to use (default: the configured one)"}},
			Example: plugins.Example{Line: "join ops@conference.example.org crier", Want: "joining ops@conference.example.org as crier"},
			Run: func(_ context.Context, c *plugins.Call) (plugins.Reply, error) {
				if err := p.host.JoinRoom(c.Arg("room"), c.Arg("nick"), ""); err != nil {
					return plugins.Reply{}, err
				}
				as := ""
				if n := c.Arg("nick"); n != "" {
					as = " as " + n
				}
				return plugins.Reply{Text: "joining " + c.Arg("room") + as + " (see !rooms)"}, nil
			},
		},
		{
			Name: "leave", Summary: "leave a room and forget it",
			Level: plugins.Admin, Global: true, Destructive: true,
			Args:    []plugins.Arg{room},
			Example: plugins.Example{Line: "leave lobby@conference.example.org", Want: "leave lobby@conference.example.org"},
			Preview: func(_ context.Context, c *plugins.Call) (string, error) {
				if !p.host.IsRoom(c.Arg("room")) {
					return "", fmt.Errorf("%s: %w", c.Arg("room"), plugins.ErrNotRoom)
				}
				return "this will leave " + c.Arg("room"), nil
			},
			Run: func(_ context.Context, c *plugins.Call) (plugins.Reply, error) {
				if err := p.host.LeaveRoom(c.Arg("room")); err != nil {
					return plugins.Reply{}, err
				}
				return plugins.Reply{Text: "left " + c.Arg("room")}, nil
			},
		},
		{
			Name: "say", Summary: "send a message to a user or room",
			Level: plugins.Admin, Global: true,
			Args: []plugins.Arg{
				{Name: "to", Label: "To", Desc: "a user's JID or a room's", Kind: plugins.ArgJID, Required: true},
				{Name: "body", Label: "Message", Desc: "the text to send", Required: true, Rest: true},
				{Name: "type", Label: "Type", Desc: "auto: groupchat to rooms, chat to users",
					Kind: plugins.ArgList, Options: []string{"auto", "chat", "headline", "normal", "groupchat"}, Default: "auto"},
			},
			Stages:  [][]string{{"to", "type"}, {"body"}},
			Example: plugins.Example{Line: "say type=headline ops@example.org deploy done", Want: "sent headline to ops@example.org"},
			Run:     p.runSay,
		},
		{
			Name: "reload", Summary: "reload the config file (shows what changes first)",
			Level: plugins.Admin, Global: true, Destructive: true,
			Example: plugins.Example{Line: "reload", Want: "reload would change"},
			Preview: func(context.Context, *plugins.Call) (string, error) {
				diff, err := p.host.ReloadPreview()
				if err != nil {
					return "", fmt.Errorf("reload would be refused: %w", err)
				}
				if strings.TrimSpace(diff) == "" {
					return "reload would change nothing", nil
				}
				return "reload would change:\n" + strings.TrimRight(diff, "\n") + "\n", nil
			},
			Run: func(context.Context, *plugins.Call) (plugins.Reply, error) {
				if err := p.host.Reload(); err != nil {
					return plugins.Reply{}, fmt.Errorf("reload refused: %w", err)
				}
				return plugins.Reply{Text: "reloaded"}, nil
			},
		},
		{
			Name: "plugins", Summary: "list the plugins, or enable or disable one",
			Level: plugins.Admin, Global: true, Destructive: true,
			Args: []plugins.Arg{
				{Name: "action", Label: "Action", Kind: plugins.ArgList, Options: []string{"list", "enable", "disable"}, Default: "list"},
				{Name: "name", Label: "Plugin", Desc: "the plugin to enable or disable"},
			},
			Example: plugins.Example{Line: "plugins list", Want: "commands"},
			Preview: func(_ context.Context, c *plugins.Call) (string, error) {
				if c.Arg("action") != "disable" {
					return "", nil
				}
				if err := p.checkPluginName(c.Arg("name")); err != nil {
					return "", err
				}
				return "this will stop the plugin " + c.Arg("name") + " until enabled again or restarted", nil
			},
			Run: p.runPlugins,
		},
		{
			Name: "acl", Summary: "list, grant or revoke bot-wide rights",
			Level: plugins.Admin, Global: true, Destructive: true,
			Args: []plugins.Arg{
				{Name: "action", Label: "Action", Kind: plugins.ArgList, Options: []string{"list", "grant", "revoke"}, Default: "list"},
				{Name: "jid", Label: "JID", Desc: "a user's bare JID", Kind: plugins.ArgJID},
				{Name: "level", Label: "Level", Kind: plugins.ArgList, Options: []string{"member", "moderator", "admin", "owner"}},
			},
			Example: plugins.Example{Line: "acl grant bob@example.org moderator", Want: "bob@example.org is now moderator"},
			Preview: func(_ context.Context, c *plugins.Call) (string, error) {
				if c.Arg("action") != "revoke" {
					return "", nil
				}
				j, err := p.aclTarget(c)
				if err != nil {
					return "", err
				}
				l := p.acl.get(j)
				if l == plugins.Anyone {
					return "", fmt.Errorf("%s has no grant", j)
				}
				return fmt.Sprintf("this will revoke %s's %s grant", j, l), nil
			},
			Run: p.runACL,
		},
	}
}

func (p *Plugin) runHelp(ctx context.Context, c *plugins.Call) (plugins.Reply, error) {
	w := whoFrom(ctx)
	vis := p.visible(w)
	if name := strings.TrimPrefix(c.Arg("command"), p.cfg.Prefix); name != "" {
		for i := range vis {
			if vis[i].Name == name {
				return plugins.Reply{Text: p.explain(&vis[i])}, nil
			}
		}
		return plugins.Reply{}, fmt.Errorf("no command %q that you may run (%shelp lists them)", clip(name, 40), p.cfg.Prefix)
	}
	var b strings.Builder
	b.WriteString("commands you may run:")
	for i := range vis {
		fmt.Fprintf(&b, "\n%s — %s", usage(p.cfg.Prefix, &vis[i]), vis[i].Summary)
	}
	fmt.Fprintf(&b, "\n%shelp NAME explains one", p.cfg.Prefix)
	return plugins.Reply{Text: b.String()}, nil
}

// explain is the help of one command: usage, arguments, example.
func (p *Plugin) explain(c *plugins.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s — %s", usage(p.cfg.Prefix, c), c.Summary)
	if c.Level > plugins.Anyone {
		scope := ""
		if c.Global {
			scope = " (bot-wide)"
		}
		fmt.Fprintf(&b, "\nneeds: %s%s", c.Level, scope)
	}
	for _, a := range c.Args {
		fmt.Fprintf(&b, "\n  %s", placeholder(&a))
		var notes []string
		if a.Desc != "" {
			notes = append(notes, a.Desc)
		}
		switch {
		case a.Required:
			notes = append(notes, "required")
		case a.Default != "":
			notes = append(notes, "default "+a.Default)
		default:
			notes = append(notes, "optional")
		}
		if a.Kind == plugins.ArgList {
			notes = append(notes, "one of "+strings.Join(a.Options, ", "))
		}
		b.WriteString(" — " + strings.Join(notes, "; "))
	}
	if c.Destructive {
		fmt.Fprintf(&b, "\nasks for confirmation (%s%s)", p.cfg.Prefix, confirmWord)
	}
	if c.Line != "" {
		fmt.Fprintf(&b, "\nexample: %s%s", p.cfg.Prefix, c.Line)
	}
	return b.String()
}

func (p *Plugin) runUptime(context.Context, *plugins.Call) (plugins.Reply, error) {
	st := p.host.Status()
	now := p.now()
	since := st.Started
	if since.IsZero() {
		since = p.started
	}
	text := "up " + roundDur(now.Sub(since)) + " (since " + since.UTC().Format(time.RFC3339) + ")"
	if st.Connected && !st.ConnectedSince.IsZero() {
		text += ", connected for " + roundDur(now.Sub(st.ConnectedSince))
	} else if !st.Connected {
		text += ", not connected"
	}
	return plugins.Reply{Text: text}, nil
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 24*time.Hour:
		return d.Round(time.Minute).String()
	}
	days := int(d / (24 * time.Hour))
	return fmt.Sprintf("%dd%s", days, (d % (24 * time.Hour)).Round(time.Hour))
}

func (p *Plugin) runStatus(context.Context, *plugins.Call) (plugins.Reply, error) {
	st := p.host.Status()
	var b strings.Builder
	if st.Connected {
		fmt.Fprintf(&b, "connection: connected to %s over %s", orUnknown(st.Server), orUnknown(st.Transport))
		if !st.ConnectedSince.IsZero() {
			fmt.Fprintf(&b, " for %s", roundDur(p.now().Sub(st.ConnectedSince)))
		}
	} else {
		b.WriteString("connection: disconnected")
	}
	switch {
	case st.StreamManagement && st.Resumable:
		b.WriteString("\nstream management: on, resumable")
	case st.StreamManagement:
		b.WriteString("\nstream management: on")
	default:
		b.WriteString("\nstream management: off")
	}
	fmt.Fprintf(&b, "\noutbox: %d queued", st.OutboxDepth)
	fmt.Fprintf(&b, "\nrooms: %d", len(st.Rooms))
	for _, r := range st.Rooms {
		fmt.Fprintf(&b, "\n  %s %s", r.JID, r.State)
		if r.Role != "" || r.Affiliation != "" {
			fmt.Fprintf(&b, " (%s/%s)", orUnknown(r.Role), orUnknown(r.Affiliation))
		}
		if r.Error != "" {
			fmt.Fprintf(&b, ": %s", r.Error)
		}
	}
	for _, l := range append(st.HA, st.Plugins...) {
		b.WriteString("\n" + l)
	}
	return plugins.Reply{Text: b.String()}, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func (p *Plugin) runRooms(context.Context, *plugins.Call) (plugins.Reply, error) {
	rooms := p.host.Rooms()
	t := &plugins.Table{Columns: []string{"Room", "Nick", "State", "Occupants", "From"}}
	for _, r := range rooms {
		from := "config"
		if r.ByCommand {
			from = "command"
		} else if !r.Configured {
			from = "-"
		}
		state := r.State
		if r.Error != "" {
			state += ": " + r.Error
		}
		t.Rows = append(t.Rows, []string{r.JID, r.Nick, state, strconv.Itoa(r.Occupants), from})
	}
	return plugins.Reply{Text: fmt.Sprintf("%d rooms", len(rooms)), Table: t}, nil
}

func (p *Plugin) runSay(ctx context.Context, c *plugins.Call) (plugins.Reply, error) {
	to := c.Arg("to")
	isRoom := p.host.IsRoom(bareOf(to)) && bareOf(to) == to
	typ := c.Arg("type")
	switch {
	case typ == "" || typ == "auto":
		typ = "chat"
		if isRoom {
			typ = "groupchat"
		}
	case typ == "groupchat" && !isRoom:
		return plugins.Reply{}, fmt.Errorf("%s: %w (groupchat goes to rooms only)", to, plugins.ErrNotRoom)
	}
	done := make(chan error, 1)
	if err := p.host.Send(plugins.Message{To: to, Type: typ, Body: c.Arg("body"), Interactive: true}, func(err error) { done <- err }); err != nil {
		return plugins.Reply{}, fmt.Errorf("not sent: %w", err)
	}
	if c.Surface == plugins.SurfaceAdHoc {
		// The server's acknowledgement is read by the same session
		// reader that waits for this ad-hoc answer: waiting for it here
		// would only time out.
		return plugins.Reply{Text: fmt.Sprintf("queued %s to %s", typ, to)}, nil
	}
	select {
	case err := <-done:
		if err != nil {
			return plugins.Reply{}, fmt.Errorf("lost: %w", err)
		}
		return plugins.Reply{Text: fmt.Sprintf("sent %s to %s", typ, to)}, nil
	case <-ctx.Done():
		return plugins.Reply{Text: fmt.Sprintf("queued %s to %s (the server has not confirmed it yet)", typ, to), NoteType: plugins.NoteWarn}, nil
	}
}

// checkPluginName refuses an unknown plugin or this one.
func (p *Plugin) checkPluginName(name string) error {
	if name == "" {
		return errNoName
	}
	if name == p.Name() {
		return errors.New("the commands plugin cannot disable itself from a command")
	}
	for _, pi := range p.host.Plugins() {
		if pi.Name == name {
			return nil
		}
	}
	return fmt.Errorf("%w %q", plugins.ErrUnknownPlugin, clip(name, 40))
}

func (p *Plugin) runPlugins(_ context.Context, c *plugins.Call) (plugins.Reply, error) {
	switch c.Arg("action") {
	case "enable", "disable":
		name := c.Arg("name")
		on := c.Arg("action") == "enable"
		if on && name == "" {
			return plugins.Reply{}, errNoName
		}
		if !on {
			if err := p.checkPluginName(name); err != nil {
				return plugins.Reply{}, err
			}
		}
		if err := p.host.SetPluginEnabled(name, on); err != nil {
			return plugins.Reply{}, err
		}
		return plugins.Reply{Text: fmt.Sprintf("%s %sd", name, c.Arg("action"))}, nil
	}
	t := &plugins.Table{Columns: []string{"Plugin", "Configured", "Running", "In chain", "Error"}}
	for _, pi := range p.host.Plugins() {
		errText := pi.Error
		if pi.Failed && errText == "" {
			errText = "failed"
		}
		t.Rows = append(t.Rows, []string{pi.Name, yesNo(pi.Configured), yesNo(pi.Running), yesNo(pi.InChain), errText})
	}
	return plugins.Reply{Text: fmt.Sprintf("%d plugins", len(t.Rows)), Table: t}, nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// aclTarget is the bare JID an acl call names.
func (p *Plugin) aclTarget(c *plugins.Call) (string, error) {
	j := c.Arg("jid")
	if j == "" {
		return "", errors.New("name the JID")
	}
	if bareOf(j) != j {
		return "", fmt.Errorf("%s: grants are for bare JIDs", j)
	}
	if p.admins[j] {
		return "", fmt.Errorf("%s is an admin in the config file ([commands] admins)", j)
	}
	return j, nil
}

func (p *Plugin) runACL(_ context.Context, c *plugins.Call) (plugins.Reply, error) {
	switch c.Arg("action") {
	case "grant", "revoke":
		j, err := p.aclTarget(c)
		if err != nil {
			return plugins.Reply{}, err
		}
		cur := p.acl.get(j)
		if cur > c.Level {
			return plugins.Reply{}, fmt.Errorf("%s holds %s, above your %s", j, cur, c.Level)
		}
		if c.Arg("action") == "revoke" {
			if cur == plugins.Anyone {
				return plugins.Reply{}, fmt.Errorf("%s has no grant", j)
			}
			if err := p.acl.set(p.ns, j, plugins.Anyone); err != nil {
				return plugins.Reply{}, fmt.Errorf("not revoked: %w", err)
			}
			return plugins.Reply{Text: fmt.Sprintf("%s's %s grant is revoked", j, cur)}, nil
		}
		l, ok := plugins.ParseLevel(c.Arg("level"))
		if !ok || l == plugins.Anyone {
			return plugins.Reply{}, errors.New("name the level: member, moderator, admin or owner")
		}
		if l > c.Level {
			return plugins.Reply{}, fmt.Errorf("you cannot grant %s, above your %s", l, c.Level)
		}
		if err := p.acl.set(p.ns, j, l); err != nil {
			return plugins.Reply{}, fmt.Errorf("not granted: %w", err)
		}
		text := fmt.Sprintf("%s is now %s", j, l)
		if p.ns == nil {
			text += " (no state store: until the next restart)"
		}
		return plugins.Reply{Text: text}, nil
	}
	t := &plugins.Table{Columns: []string{"JID", "Level", "From"}}
	for _, a := range p.cfg.Admins {
		t.Rows = append(t.Rows, []string{a, plugins.Owner.String(), "config"})
	}
	t.Rows = append(t.Rows, p.acl.list()...)
	return plugins.Reply{Text: fmt.Sprintf("%d entries", len(t.Rows)), Table: t}, nil
}
