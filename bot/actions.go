package bot

// The actions stage: what rules, cron jobs and plugins ask the bot to do.

import (
	"context"
	"encoding/xml"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/bot/outbox"
	"crier/plugins"
	"crier/rules"
)

func (b *Bot) baseMessage() rules.Message {
	return rules.Message{Kind: rules.KindMessage, BotJID: b.bare}
}

// cronAction carries out an action of a cron job.
func (b *Bot) cronAction(a rules.Action) {
	b.met.ruleHits.WithLabelValues(a.Rule).Inc()
	b.do(a)
}

// do carries out one action.
func (b *Bot) do(a rules.Action) { b.doReply(a, time.Time{}) }

// doReply carries out one action of a rule that answered an event
// received at in (zero for cron and plugins): replies are then timed from
// the event to the server's acknowledgement (crier_reply_seconds).
func (b *Bot) doReply(a rules.Action, in time.Time) {
	switch a.Kind {
	case rules.ActReply, rules.ActSend, rules.ActHeadline:
		b.sendText(a.To, a.Type, a.Text, a.Subject, in)
	case rules.ActSubject:
		room := firstNonEmpty(a.Room, a.To)
		_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Message, To: room, Type: "groupchat", Subject: cleanText(firstNonEmpty(a.Subject, a.Text)), ID: b.nextID(), Room: room})
	case rules.ActKick, rules.ActBan, rules.ActVoice, rules.ActDevoice:
		b.moderate(a)
	case rules.ActInvite:
		room := a.Room
		invitee, reason := a.To, cleanText(a.Text)
		_ = b.out.Enqueue(&outbox.Item{Kind: outbox.Message, To: room, ID: b.nextID(), Payload: func() xml.TokenReader {
			var inner xml.TokenReader
			if reason != "" {
				inner = outbox.TextElem("reason", reason)
			}
			inv := xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Local: "invite"}, Attr: []xml.Attr{{Name: xml.Name{Local: "to"}, Value: invitee}}})
			return xmlstream.Wrap(inv, xml.StartElement{Name: xml.Name{Space: nsMUCUser, Local: "x"}})
		}})
	case rules.ActPublish:
		b.publish(a)
	case rules.ActLog:
		b.log.Info("rule", "rule", a.Rule, "text", a.Text)
	default:
		b.log.Warn("unknown action", "rule", a.Rule, "kind", a.Kind)
	}
}

// publish hands a rule's payload to the first plugin that publishes.
func (b *Bot) publish(a rules.Action) {
	for _, rp := range b.plugins.active() {
		if pub, ok := rp.p.(plugins.Publisher); ok {
			if err := pub.Publish(a.To, []byte(a.Text)); err != nil {
				b.log.Warn("publish failed", "rule", a.Rule, "subject", a.To, "err", err)
			}
			return
		}
	}
	b.log.Warn("rule wants to publish, but no plugin publishes (configure [nats])", "rule", a.Rule, "subject", a.To)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// sendText queues a message, split under the body byte limit. A reply to
// an event received at in (not zero) is interactive.
func (b *Bot) sendText(to, typ, text, subject string, in time.Time) {
	if to == "" {
		return
	}
	text = cleanText(text)
	room := ""
	if typ == "groupchat" {
		if j, err := jid.Parse(to); err == nil {
			room = j.Bare().String()
		}
	}
	parts := splitBody(text, b.cfg.Load().maxBody)
	for i, p := range parts {
		it := &outbox.Item{Kind: outbox.Message, To: to, Type: typ, Body: p, ID: b.nextID(), Room: room}
		if !in.IsZero() {
			// An answer to a message someone just wrote: ahead of
			// relayed events, webhooks and cron posts.
			it.Priority = outbox.Interactive
		}
		if i == 0 {
			it.Subject = cleanText(subject)
			it.Received = in
		}
		if err := b.out.Enqueue(it); err != nil {
			return // counted by the outbox
		}
	}
}

// moderate sends a muc#admin request for kick, ban, voice or devoice. It
// needs the right role; without it the action is refused with a clear log.
func (b *Bot) moderate(a rules.Action) {
	room := firstNonEmpty(a.Room, a.To)
	role, aff, joined := b.rooms.selfRole(room)
	if !joined || !a.Permitted(role, aff) {
		b.log.Warn("rule action refused: the bot lacks the rights in the room", "rule", a.Rule, "action", a.Kind, "room", room, "role", role, "affiliation", aff, "err", ErrNotModerator)
		b.met.rejected.WithLabelValues("not_moderator").Inc()
		return
	}
	attr := xml.Attr{Name: xml.Name{Local: "role"}}
	switch a.Kind {
	case rules.ActKick:
		attr.Value = "none"
	case rules.ActVoice:
		attr.Value = "participant"
	case rules.ActDevoice:
		attr.Value = "visitor"
	case rules.ActBan:
		attr = xml.Attr{Name: xml.Name{Local: "affiliation"}, Value: "outcast"}
	}
	itemAttrs := []xml.Attr{attr}
	if a.Kind == rules.ActBan {
		occ, ok := b.rooms.occupantOf(room, a.Nick)
		if !ok || occ.realJID == "" {
			b.log.Warn("cannot ban: the occupant's real JID is not known", "rule", a.Rule, "room", room, "nick", a.Nick)
			return
		}
		itemAttrs = append(itemAttrs, xml.Attr{Name: xml.Name{Local: "jid"}, Value: occ.realJID})
	} else {
		itemAttrs = append(itemAttrs, xml.Attr{Name: xml.Name{Local: "nick"}, Value: a.Nick})
	}
	reason := cleanText(a.Text)
	to, err := jid.Parse(room)
	if err != nil {
		return
	}
	b.connMu.Lock()
	conn := b.conn
	b.connMu.Unlock()
	if conn == nil {
		return
	}
	var inner xml.TokenReader
	if reason != "" {
		inner = outbox.TextElem("reason", reason)
	}
	payload := xmlstream.Wrap(
		xmlstream.Wrap(inner, xml.StartElement{Name: xml.Name{Local: "item"}, Attr: itemAttrs}),
		xml.StartElement{Name: xml.Name{Space: nsMUCAdmin, Local: "query"}},
	)
	// sendIQ waits for the answer, which the session's reader delivers: it
	// must not run on the handler goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := b.sendIQ(ctx, conn, to, stanza.SetIQ, payload)
		if err != nil {
			b.log.Warn("moderation request failed", "rule", a.Rule, "action", a.Kind, "room", room, "nick", a.Nick, "err", err)
			return
		}
		b.log.Info("moderation done", "rule", a.Rule, "action", a.Kind, "room", room, "nick", a.Nick)
	}()
}
