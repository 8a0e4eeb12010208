package bot

import (
	"context"
	"encoding/xml"
	"errors"
	"time"

	"mellium.im/xmlstream"

	"crier/plugins"
	"crier/rules"
)

const nsSID = "urn:xmpp:sid:0"

// pluginEnv is what plugins get from the bot.
func (b *Bot) pluginEnv(p plugins.Plugin) plugins.Env {
	return plugins.Env{
		Logger:     b.log.With("plugin", p.Name()),
		Registerer: b.met.reg,
		Send:       b.pluginSend,
		Subscribe: func(f func(plugins.Event)) {
			b.subMu.Lock()
			b.subs = append(b.subs, f)
			b.subMu.Unlock()
		},
	}
}

// pluginSend queues a plugin's message. A body over the byte limit is
// split; done then fires once, after the last part (or with the first
// error).
func (b *Bot) pluginSend(m plugins.Message, done func(error)) error {
	if done == nil {
		done = func(error) {}
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
		it := &Item{Kind: "message", To: m.To, Type: m.Type, Body: body, ID: b.nextID(), Room: room, Done: settle}
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
				if errors.Is(err, ErrClosed) {
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

// publishEvent hands a received message to subscribed plugins.
func (b *Bot) publishEvent(m rules.Message, id string) {
	b.subMu.Lock()
	subs := b.subs
	b.subMu.Unlock()
	if len(subs) == 0 {
		return
	}
	ev := plugins.Event{Time: time.Now(), Type: m.Type, From: m.From, Room: m.Room, Nick: m.Nick, Body: m.Body, Subject: m.Subject, ID: id}
	for _, f := range subs {
		f(ev)
	}
}

// startPlugins starts every enabled plugin; a plugin that fails to start
// stops the ones started before it.
func (b *Bot) startPlugins(ctx context.Context) error {
	for _, p := range b.plugins {
		if s, ok := p.(plugins.Starter); ok {
			if err := s.Start(ctx, b.pluginEnv(p)); err != nil {
				b.stopPlugins()
				return err
			}
			b.log.Info("plugin started", "plugin", p.Name())
		}
	}
	return nil
}

// stopPlugins stops plugins in reverse order, each within 5 seconds.
func (b *Bot) stopPlugins() {
	b.pluginsStop.Do(b.stopPluginsNow)
}

func (b *Bot) stopPluginsNow() {
	for i := len(b.plugins) - 1; i >= 0; i-- {
		if s, ok := b.plugins[i].(plugins.Stopper); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.Stop(ctx); err != nil {
				b.log.Warn("plugin did not stop cleanly", "plugin", b.plugins[i].Name(), "err", err)
			}
			cancel()
		}
	}
}
