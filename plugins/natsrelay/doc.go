// Package natsrelay is the crier plugin between NATS and XMPP.
//
// Each [[nats.relay]] subscribes to a subject (wildcards allowed) with core
// NATS, at most once, or reads a JetStream durable pull consumer, at least
// once: a JetStream message is acked only after the bot reported that the
// XMPP server has every stanza made from it, and nacked with a delay
// otherwise. Payloads are plain text or JSON objects, rendered by a
// per-relay text/template; malformed ones go to a dead-letter subject.
// Each stanza carries an XEP-0359 origin-id derived from the NATS message
// id, and a bounded seen-window keeps a redelivered message from being
// sent twice.
//
// In the other direction, nats.publish publishes every message the bot
// receives as a JSON Event, and nats.request turns NATS requests into
// messages, replying once the XMPP server acked them.
//
// The bot builds the plugin from the config and starts it with an Env:
//
//	p, enabled, err := natsrelay.New(cfg)
//	if err == nil && enabled {
//		err = p.(plugins.Starter).Start(ctx, env)
//	}
//	defer p.(plugins.Stopper).Stop(stopCtx)
//
// A one-shot command can reach a running daemon with Connect and
// SendRequest.
package natsrelay
