package bot

import (
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmlstream"

	"crier/bot/outbox"
	"crier/plugins"
	"crier/rules"
)

const nsSID = "urn:xmpp:sid:0"

// pluginSend queues a plugin's message. A body over the byte limit is
// split; done then fires once, after the last part (or with the first
// error). An error returned now means done is never called.
func (b *Bot) pluginSend(m plugins.Message, done func(error)) error {
	return errorOrDone(func(settle func(error)) error { return b.sendParts(m, settle) }, done)
}

// sendParts queues the parts of m; done fires once after the last part
// (or with the first error).
func (b *Bot) sendParts(m plugins.Message, done func(error)) error {
	if m.To == "" {
		return fmt.Errorf("plugins: message without a recipient")
	}
	from, err := b.checkFrom(m.From)
	if err != nil {
		return err
	}
	room := ""
	if m.Type == rules.TypeGroupchat {
		room = bareOf(m.To)
	}
	parts := splitBody(cleanText(m.Body), b.cfg.Load().maxBody)
	remaining := len(parts)
	var failed error
	settle := func(err error) {
		b.doneMu.Lock()
		remaining--
		if err != nil && failed == nil {
			failed = err
		}
		last := remaining == 0
		ferr := failed
		b.doneMu.Unlock()
		if last {
			done(ferr)
		}
	}
	for i, body := range parts {
		it := &outbox.Item{Kind: outbox.Message, From: from, To: m.To, Type: m.Type, Body: body, ID: b.nextID(), Room: room, Done: settle, Work: m.Work && room == ""}
		if m.Interactive {
			it.Priority = outbox.Interactive
		}
		if i == 0 {
			it.Subject = cleanText(m.Subject)
		}
		if m.OriginID != "" {
			oid := m.OriginID
			if len(parts) > 1 {
				oid = oid + "." + itoa(i)
			}
			it.Payload = func() xml.TokenReader {
				return xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: nsSID, Local: "origin-id"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: oid}}})
			}
		}
		if err := b.out.Enqueue(it); err != nil {
			// The parts not queued settle now; those queued settle later.
			for j := i; j < len(parts); j++ {
				settle(err)
			}
			if i == 0 {
				if errors.Is(err, outbox.ErrClosed) {
					return plugins.ErrStopped
				}
				return plugins.ErrBusy
			}
			return nil
		}
	}
	return nil
}
func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// observe hands a received message to the plugins that observe every
// message (plugins.Observer); they must not block.
func (b *Bot) observe(ev *plugins.Event) {
	for _, rp := range b.plugins.active() {
		if o, ok := rp.p.(plugins.Observer); ok {
			func() {
				defer func() {
					if p := recover(); p != nil {
						b.log.Error("plugin panicked observing a message; plugin disabled", "plugin", rp.name, "panic", p)
						b.hm.pluginFailures.WithLabelValues(rp.name, "panic").Inc()
						b.plugins.fail(rp, "panicked")
					}
				}()
				o.Observe(ev)
			}()
		}
	}
}
