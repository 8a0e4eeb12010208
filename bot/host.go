package bot

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/bot/outbox"
	"crier/internal/state"
	"crier/plugins"
	"crier/rules"
)

// pluginHost is the plugins.Host of one plugin instance: the bot, as far
// as that plugin may reach it. Registrations (iq handlers, disco nodes) are
// kept per instance, so that a reload's new instance takes over the same
// names before the old one stops, and the old one's end removes nothing of
// the new one's.
type pluginHost struct {
	b  *Bot
	rp *runningPlugin
}

var _ plugins.Host = (*pluginHost)(nil)

// Send queues a message (see plugins.Host).
func (h *pluginHost) Send(m plugins.Message, done func(error)) error {
	return h.b.pluginSend(m, done)
}

// Do carries out a room action with the bot's own rights checks.
func (h *pluginHost) Do(a plugins.Action, done func(error)) error {
	err := h.b.doAction(a, done)
	result := "requested"
	if err != nil {
		result = "refused"
	}
	h.b.hm.pluginActions.WithLabelValues(a.Kind.String(), result).Inc()
	return err
}

// Occupant looks up an occupant by nick.
func (h *pluginHost) Occupant(room, nick string) (plugins.Occupant, bool) {
	o, ok := h.b.rooms.occupantOf(room, nick)
	if !ok {
		return plugins.Occupant{}, false
	}
	return occupantInfo(room, nick, o), true
}

func occupantInfo(room, nick string, o occupant) plugins.Occupant {
	return plugins.Occupant{Room: room, Nick: nick, Role: o.role, Affiliation: o.affiliation, RealJID: o.realJID, OccupantID: o.occupantID, Joined: o.joined}
}

// Occupants lists a room's occupants, by nick.
func (h *pluginHost) Occupants(room string) []plugins.Occupant {
	return h.b.rooms.occupantList(room)
}

// IsRoom reports whether jid is a room the bot is in or joins.
func (h *pluginHost) IsRoom(j string) bool { return h.b.rooms.isRoom(bareOf(j)) }

// Rooms lists the rooms with the bot's state in each.
func (h *pluginHost) Rooms() []plugins.RoomInfo { return h.b.rooms.infos() }

// JoinRoom joins a room by command and keeps it in the store.
func (h *pluginHost) JoinRoom(room, nick, password string) error {
	return h.b.joinByCommand(room, nick, password)
}

// LeaveRoom leaves a room by command.
func (h *pluginHost) LeaveRoom(room string) error { return h.b.leaveByCommand(room) }

// Status reports the connection, rooms and queues.
func (h *pluginHost) Status() plugins.Status { return h.b.status() }

// Speaking reports whether this instance may speak ([ha]: leads).
func (h *pluginHost) Speaking() bool { return h.b.leader() }

// HandleIQ registers an iq handler of the plugin.
func (h *pluginHost) HandleIQ(typ string, name xml.Name, feature string, f plugins.IQHandler) {
	h.b.iqr.add(iqKey{typ: typ, name: name}, iqRoute{owner: h.rp, feature: feature, h: f})
}

// HandleDisco makes d answer disco queries on node.
func (h *pluginHost) HandleDisco(node string, d plugins.DiscoNode, features ...string) {
	h.b.iqr.addNode(node, nodeRoute{owner: h.rp, d: d, features: features})
}

// State returns the plugin's namespace at its Spec.Schema.
func (h *pluginHost) State() (state.Namespace, error) {
	if h.b.store == nil {
		return nil, plugins.ErrNoStore
	}
	spec, _ := plugins.Lookup(h.rp.name)
	return h.b.store.Namespace(h.rp.name, spec.Schema)
}

// SharedState returns the plugin's namespace in a KV bucket shared with
// other instances.
func (h *pluginHost) SharedState(bucket string) (state.Namespace, error) {
	st, err := h.b.sharedStore(bucket)
	if err != nil {
		return nil, err
	}
	spec, _ := plugins.Lookup(h.rp.name)
	return st.Namespace(h.rp.name, spec.Schema)
}

// Publish publishes through the Publisher plugin.
func (h *pluginHost) Publish(subject string, data []byte) error {
	for _, rp := range h.b.plugins.active() {
		if pub, ok := rp.p.(plugins.Publisher); ok {
			return pub.Publish(subject, data)
		}
	}
	return plugins.ErrUnsupported
}

// Commands lists the commands of every running Commander. The slice is
// shared and replaced (never changed) when the running plugins change.
func (h *pluginHost) Commands() []plugins.Command { return h.b.plugins.commands() }

// Plugins lists the registered plugins and their state.
func (h *pluginHost) Plugins() []plugins.PluginInfo { return h.b.pluginInfos() }

// SetPluginEnabled starts or stops a configured plugin.
func (h *pluginHost) SetPluginEnabled(name string, on bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return h.b.plugins.setEnabled(ctx, name, on)
}

// ReloadPreview describes what a reload of the config file would change.
func (h *pluginHost) ReloadPreview() (string, error) { return h.b.reloadPreview() }

// Reload reloads the config file.
func (h *pluginHost) Reload() error {
	path := h.b.cfg.Load().cfg.Path
	if path == "" {
		return fmt.Errorf("%w: the configuration was not read from a file", ErrReloadRefused)
	}
	return h.b.ReloadFile(path)
}

// unregister removes the instance's iq handlers and disco nodes.
func (h *pluginHost) unregister() { h.b.iqr.removeOwner(h.rp) }

// pluginInfos lists every registered plugin.
func (b *Bot) pluginInfos() []plugins.PluginInfo {
	chain := b.cfg.Load().chain
	var out []plugins.PluginInfo
	for _, n := range plugins.Names() {
		pi := plugins.PluginInfo{Name: n, InChain: slices.Contains(chain, n)}
		if rp := b.plugins.get(n); rp != nil {
			pi.Configured = true
			pi.Running = rp.started.Load() && !rp.off.Load()
			if f := rp.failure(); f != "" {
				pi.Failed, pi.Error = true, f
			}
		}
		out = append(out, pi)
	}
	return out
}

// status reports the connection, rooms and queues for plugins.
func (b *Bot) status() plugins.Status {
	st := plugins.Status{Version: b.version, Started: b.started, OutboxDepth: b.out.Depth(), Rooms: b.rooms.infos(), HA: b.haLines()}
	b.connMu.Lock()
	conn := b.conn
	since := b.connSince
	b.connMu.Unlock()
	if conn != nil {
		st.Connected = true
		st.Transport = conn.Transport
		st.Server = conn.Server
		st.StreamManagement = conn.SM()
		st.Resumable = conn.ResumeState() != nil
		st.ConnectedSince = since
	}
	for _, rp := range b.plugins.all() {
		state := "running"
		switch {
		case rp.failure() != "":
			state = "failed: " + rp.failure()
		case rp.off.Load():
			state = "disabled"
		case !rp.started.Load():
			state = "stopped"
		}
		if r, ok := rp.p.(plugins.Readier); ok && state == "running" {
			if ready, why := r.Ready(); !ready {
				state = "not ready"
				if why != "" {
					state += " (" + why + ")"
				}
			}
		}
		st.Plugins = append(st.Plugins, fmt.Sprintf("%s: %s", rp.name, state))
		if sr, ok := rp.p.(plugins.StatusReporter); ok && state == "running" {
			for _, l := range sr.Status() {
				st.Plugins = append(st.Plugins, rp.name+": "+l)
			}
		}
	}
	return st
}

// doAction carries out a plugin's room action after the rights checks;
// done gets the server's answer.
func (b *Bot) doAction(a plugins.Action, done func(error)) error {
	if done == nil {
		done = func(error) {}
	}
	room := bareOf(a.Room)
	if room == "" || !b.rooms.isRoom(room) {
		return fmt.Errorf("%w: %s", plugins.ErrNotRoom, a.Room)
	}
	role, aff, joined := b.rooms.selfRole(room)
	if !joined {
		return fmt.Errorf("%w: %s (not joined now)", plugins.ErrNotRoom, room)
	}
	need := func(ok bool, what string) error {
		if ok {
			return nil
		}
		return fmt.Errorf("%w: %s needs %s (the bot is %s/%s in %s)", plugins.ErrNoRights, a.Kind, what, role, aff, room)
	}
	isMod := role == "moderator"
	isAdmin := aff == "admin" || aff == "owner"
	var item []xml.Attr
	switch a.Kind {
	case plugins.ActSubject:
		return b.enqueueDone(&outbox.Item{Kind: outbox.Message, To: room, Type: "groupchat", Subject: cleanText(a.Text), ID: b.nextID(), Room: room}, done)
	case plugins.ActInvite:
		if _, err := jid.Parse(a.JID); err != nil || a.JID == "" {
			return fmt.Errorf("plugins: invite: %q is not a JID", a.JID)
		}
		b.do(rules.Action{Kind: rules.ActInvite, Room: room, To: a.JID, Text: a.Reason})
		done(nil)
		return nil
	case plugins.ActKick, plugins.ActVoice, plugins.ActDevoice:
		if err := need(isMod, "the moderator role"); err != nil {
			return err
		}
		if _, ok := b.rooms.occupantOf(room, a.Nick); !ok {
			return fmt.Errorf("%w: %q in %s", plugins.ErrUnknownOccupant, a.Nick, room)
		}
		r := map[plugins.ActionKind]string{plugins.ActKick: "none", plugins.ActVoice: "participant", plugins.ActDevoice: "visitor"}[a.Kind]
		item = []xml.Attr{{Name: xml.Name{Local: "role"}, Value: r}, {Name: xml.Name{Local: "nick"}, Value: a.Nick}}
	case plugins.ActBan, plugins.ActUnban:
		if err := need(isAdmin, "the admin or owner affiliation"); err != nil {
			return err
		}
		target := bareOf(a.JID)
		if target == "" && a.Kind == plugins.ActBan {
			occ, ok := b.rooms.occupantOf(room, a.Nick)
			if !ok {
				return fmt.Errorf("%w: %q in %s", plugins.ErrUnknownOccupant, a.Nick, room)
			}
			if occ.realJID == "" {
				return fmt.Errorf("%w: %q in %s", plugins.ErrNoJID, a.Nick, room)
			}
			target = occ.realJID
		}
		if target == "" {
			return fmt.Errorf("%w: unban needs a JID", plugins.ErrNoJID)
		}
		aff := "outcast"
		if a.Kind == plugins.ActUnban {
			aff = "none"
		}
		item = []xml.Attr{{Name: xml.Name{Local: "affiliation"}, Value: aff}, {Name: xml.Name{Local: "jid"}, Value: target}}
	case plugins.ActRetract:
		if err := need(isMod, "the moderator role"); err != nil {
			return err
		}
		if a.StanzaID == "" {
			return fmt.Errorf("%w: the message has no stanza-id from the room", plugins.ErrUnsupported)
		}
		return b.roomIQ(room, retractPayload(a.StanzaID, cleanText(a.Reason)), a, done)
	case plugins.ActConfigure:
		if err := need(aff == "owner", "the owner affiliation"); err != nil {
			return err
		}
		return b.roomIQ(room, configPayload(a.Fields), a, done)
	default:
		return fmt.Errorf("plugins: unknown action %d", a.Kind)
	}
	var inner xml.TokenReader
	if r := cleanText(a.Reason); r != "" {
		inner = outbox.TextElem("reason", r)
	}
	payload := xmlstream.Wrap(
		xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Local: "item"}, Attr: item}),
		xml.StartElement{Name: xml.Name{Space: nsMUCAdmin, Local: "query"}},
	)
	return b.roomIQ(room, payload, a, done)
}

// roomIQ sends an iq set to a room on a goroutine and reports the answer.
func (b *Bot) roomIQ(room string, payload xml.TokenReader, a plugins.Action, done func(error)) error {
	to, err := jid.Parse(room)
	if err != nil {
		return fmt.Errorf("%w: %s", plugins.ErrNotRoom, room)
	}
	b.connMu.Lock()
	conn := b.conn
	b.connMu.Unlock()
	if conn == nil {
		return fmt.Errorf("%w: not connected", plugins.ErrBusy)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := b.sendIQ(ctx, conn, to, stanza.SetIQ, payload)
		result := "done"
		if err != nil {
			result = "failed"
			b.log.Warn("room action failed", "action", a.Kind.String(), "room", room, "nick", a.Nick, "jid", a.JID, "err", err)
		} else {
			b.log.Info("room action done", "action", a.Kind.String(), "room", room, "nick", a.Nick, "jid", a.JID)
		}
		b.hm.pluginActions.WithLabelValues(a.Kind.String(), result).Inc()
		done(err)
	}()
	return nil
}

// XEP-0425 (moderated message retraction, the fastening form Prosody's
// mod_muc_moderation and ejabberd answer).
const (
	nsFasten   = "urn:xmpp:fasten:0"
	nsModerate = "urn:xmpp:message-moderate:0"
	nsRetract  = "urn:xmpp:message-retract:0"
	nsMUCOwner = "http://jabber.org/protocol/muc#owner"
	nsDataForm = "jabber:x:data"
)

func retractPayload(id, reason string) xml.TokenReader {
	inner := []xml.TokenReader{xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsRetract, Local: "retract"}})}
	if reason != "" {
		inner = append(inner, outbox.TextElem("reason", reason))
	}
	return xmlstream.Wrap(
		xmlstream.Wrap(xmlstream.MultiReader(inner...), xml.StartElement{Name: xml.Name{Space: nsModerate, Local: "moderate"}}),
		xml.StartElement{Name: xml.Name{Space: nsFasten, Local: "apply-to"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}}},
	)
}

func configPayload(fields map[string]string) xml.TokenReader {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []xml.TokenReader{field("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig", "hidden")}
	for _, k := range keys {
		parts = append(parts, field(k, fields[k], ""))
	}
	form := xmlstream.Wrap(xmlstream.MultiReader(parts...), xml.StartElement{Name: xml.Name{Space: nsDataForm, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "submit"}}})
	return xmlstream.Wrap(form, xml.StartElement{Name: xml.Name{Space: nsMUCOwner, Local: "query"}})
}

func field(name, value, typ string) xml.TokenReader {
	attrs := []xml.Attr{{Name: xml.Name{Local: "var"}, Value: name}}
	if typ != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: typ})
	}
	return xmlstream.Wrap(outbox.TextElem("value", value), xml.StartElement{Name: xml.Name{Local: "field"}, Attr: attrs})
}

// enqueueDone queues an item whose done reports the write; an error now
// means done is never called.
func (b *Bot) enqueueDone(it *outbox.Item, done func(error)) error {
	return errorOrDone(func(settle func(error)) error {
		it.Done = settle
		if err := b.out.Enqueue(it); err != nil {
			if errors.Is(err, outbox.ErrClosed) {
				return plugins.ErrStopped
			}
			return plugins.ErrBusy
		}
		return nil
	}, done)
}

// errorOrDone runs start, which queues work that reports to settle, and
// keeps the Host's promise: when start returns an error, done is never
// called (the outbox reports refusals to the item as well); otherwise
// done is called once, with the first settle, even if that came before
// start returned.
func errorOrDone(start func(settle func(error)) error, done func(error)) error {
	if done == nil {
		done = func(error) {}
	}
	var (
		mu       sync.Mutex
		state    int // 0: start running, 1: accepted, 2: refused, 3: done
		early    error
		hasEarly bool
	)
	settle := func(err error) {
		mu.Lock()
		switch state {
		case 0:
			if !hasEarly {
				early, hasEarly = err, true
			}
			mu.Unlock()
		case 1:
			state = 3
			mu.Unlock()
			done(err)
		default:
			mu.Unlock()
		}
	}
	err := start(settle)
	mu.Lock()
	if err != nil {
		state = 2
		mu.Unlock()
		return err
	}
	if hasEarly {
		state = 3
		mu.Unlock()
		done(early)
		return nil
	}
	state = 1
	mu.Unlock()
	return nil
}
