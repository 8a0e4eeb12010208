package commands

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"crier/internal/state"
	"crier/plugins"
)

// who is a requester: where a command came from and with which rights.
type who struct {
	// from is the full JID (room/nick in a room).
	from string
	// real is the bare real JID; empty when the room hides it.
	real string
	// room is set when the command was given in a room or privately
	// through it; roomLevel is the requester's room-scoped level there.
	room      string
	nick      string
	roomLevel plugins.Level
	// private is true for a one-to-one message (also through a room).
	private bool
	surface plugins.Surface
}

// key identifies the requester for rate limits and confirmations: the
// real JID when known, else the occupant's room JID.
func (w who) key() string {
	if w.real != "" {
		return w.real
	}
	return w.from
}

// place is where the command was given, for confirmations.
func (w who) place() string {
	switch {
	case w.surface == plugins.SurfaceAdHoc:
		return "adhoc"
	case w.room != "" && !w.private:
		return w.room
	case w.room != "":
		return "pm:" + w.room
	}
	return "direct"
}

// where names the place in audit records and logs.
func (w who) where() string {
	if w.surface == plugins.SurfaceAdHoc {
		return "adhoc"
	}
	if w.room != "" && !w.private {
		return w.room
	}
	if w.room != "" {
		return "private via " + w.room
	}
	return "chat"
}

func bareOf(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// roomLevel is the room-scoped level of an occupant's role and
// affiliation.
func roomLevel(role, affiliation string) plugins.Level {
	l := plugins.Anyone
	switch affiliation {
	case "owner", "admin":
		l = plugins.Admin
	case "member":
		l = plugins.Member
	}
	if role == "moderator" && l < plugins.Moderator {
		l = plugins.Moderator
	}
	return l
}

// chatWho is the requester of a chat message.
func (p *Plugin) chatWho(ev *plugins.Event) who {
	w := who{from: ev.From, real: bareOf(ev.RealJID), nick: ev.Nick, private: ev.Type != "groupchat", surface: plugins.SurfaceChat}
	if ev.Room != "" {
		w.room = ev.Room
		w.roomLevel = roomLevel(ev.Role, ev.Affiliation)
	} else if w.real == "" {
		w.real = bareOf(ev.From)
	}
	return w
}

// adhocWho is the requester of an iq: a full JID, or an occupant's room
// JID when the iq comes through a room (then the room's view of the
// occupant counts).
func (p *Plugin) adhocWho(from string) who {
	w := who{from: from, private: true, surface: plugins.SurfaceAdHoc}
	bare := bareOf(from)
	if p.host != nil && p.host.IsRoom(bare) {
		w.room = bare
		w.nick = strings.TrimPrefix(from[len(bare):], "/")
		if o, ok := p.host.Occupant(bare, w.nick); ok {
			w.real = bareOf(o.RealJID)
			w.roomLevel = roomLevel(o.Role, o.Affiliation)
		}
		return w
	}
	w.real = bare
	return w
}

// globalLevel is the bot-wide level of a real JID: owner for [commands]
// admins, else its grant.
func (p *Plugin) globalLevel(real string) plugins.Level {
	if real == "" {
		return plugins.Anyone
	}
	if p.admins[real] {
		return plugins.Owner
	}
	return p.acl.get(real)
}

// levelFor is the requester's level for a command: bot-wide only for a
// Global command, else the higher of the bot-wide and room-scoped ones.
func (p *Plugin) levelFor(w who, cmd *plugins.Command) plugins.Level {
	g := p.globalLevel(w.real)
	if cmd.Global {
		return g
	}
	return max(g, w.roomLevel)
}

// allowed reports whether the requester may run cmd.
func (p *Plugin) allowed(w who, cmd *plugins.Command) bool {
	return p.levelFor(w, cmd) >= cmd.Level
}

// isAdmin reports whether the requester is a bot admin (for the rate
// limit exemption).
func (p *Plugin) isAdmin(w who) bool { return p.globalLevel(w.real) >= plugins.Admin }

// forbiddenText names the missing right.
func (p *Plugin) forbiddenText(w who, cmd *plugins.Command) string {
	scope := ""
	if cmd.Global {
		scope = " (bot-wide)"
	}
	return fmt.Sprintf("%s%s needs the %s right%s; you have %s", p.cfg.Prefix, cmd.Name, cmd.Level, scope, p.levelFor(w, cmd))
}

// visible returns the commands the requester may run.
func (p *Plugin) visible(w who) []plugins.Command {
	all := p.commands()
	out := all[:0:0]
	for i := range all {
		if p.allowed(w, &all[i]) {
			out = append(out, all[i])
		}
	}
	return out
}

// acl holds the grants made by the acl command: a bare JID's bot-wide
// level, mirrored in the state store under "acl/<jid>".
type acl struct {
	mu     sync.Mutex
	grants map[string]plugins.Level
}

func newACL() *acl { return &acl{grants: map[string]plugins.Level{}} }

const aclPrefix = "acl/"

func (a *acl) load(ns state.Namespace) error {
	grants := map[string]plugins.Level{}
	err := ns.View(func(tx state.Tx) error {
		return tx.ForEach(aclPrefix, func(k string, v []byte) error {
			l, ok := plugins.ParseLevel(string(v))
			if !ok {
				return fmt.Errorf("grant %s: unknown level %q", k, v)
			}
			grants[strings.TrimPrefix(k, aclPrefix)] = l
			return nil
		})
	})
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.grants = grants
	a.mu.Unlock()
	return nil
}

func (a *acl) get(j string) plugins.Level {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grants[j]
}

// set grants l to j (Anyone revokes), in the store first when there is
// one.
func (a *acl) set(ns state.Namespace, j string, l plugins.Level) error {
	if ns != nil {
		err := ns.Update(func(tx state.Tx) error {
			if l == plugins.Anyone {
				return tx.Delete(aclPrefix + j)
			}
			return tx.Put(aclPrefix+j, []byte(l.String()))
		})
		if err != nil {
			return err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if l == plugins.Anyone {
		delete(a.grants, j)
	} else {
		a.grants[j] = l
	}
	return nil
}

func (a *acl) list() [][]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var rows [][]string
	for _, j := range slices.Sorted(maps.Keys(a.grants)) {
		rows = append(rows, []string{j, a.grants[j].String(), "grant"})
	}
	return rows
}
