// Package miniserver is a small embedded XMPP server for demo mode and fast
// tests: c2s over TCP with STARTTLS and over direct TLS (XEP-0368), BOSH
// through boshcm, WebSocket (RFC 7395, internal/wswire) at /xmpp-websocket,
// SASL SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN, resource binding, routing,
// presence, rosters with subscriptions, offline messages, a multi-user chat
// service (XEP-0045, with XEP-0421 occupant ids, XEP-0359 stanza-ids,
// XEP-0425 moderated retraction and members-only rooms), disco, ping, and a
// fault API that
// tests use to drop connections, go deaf, kick occupants and restart.
//
// Mellium negotiates each stream (TLS, SASL, bind); everything after that
// is read as element trees and handled under one lock, and delivery only
// queues bytes for each client's writer. What a client sends is read through
// a filter that takes out the whitespace between top-level elements (RFC
// 6120 allows it, go-sendxmpp sends it, mellium's negotiator fails on it);
// a negotiation that fails on the client's side ends with a stream error
// naming a defined condition.
//
// Usage:
//
//	srv, err := miniserver.Start(ctx, miniserver.Config{
//		Domain:   "localhost",
//		Addr:     "127.0.0.1:0",
//		Accounts: map[string]string{"bot": "secret", "alice": "alice"},
//	})
//	if err != nil {
//		return err
//	}
//	defer srv.Close()
//	tlsCfg := srv.ClientTLSConfig("localhost") // trusts srv.CertPool()
//	// dial srv.Addr(), STARTTLS with tlsCfg, authenticate, bind ...
//	srv.Kick("lobby", "bot", 307) // then watch the bot rejoin
package miniserver
