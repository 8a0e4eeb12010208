// Package wswire holds the WebSocket wire format shared by crier's
// WebSocket client (transport) and the embedded server
// (internal/miniserver): the RFC 6455 opening handshake and frames, and the
// RFC 7395 framing of an XMPP stream on top of them. It imports only the
// standard library and the stdlib-only leaves internal/xmlsplit and
// internal/boshwire.
//
// A Conn reads and writes whole WebSocket messages over an upgraded
// connection: fragmented messages are put together again, pings are
// answered, a close frame is echoed, and a message larger than the limit
// ends the connection with status 1009. A StreamConn is a net.Conn on a
// Conn that a mellium session reads and writes as if it were a TCP stream:
//
//	// nc: a TCP (wss: TLS) connection to u's host
//	br, err := wswire.ClientHandshake(nc, u, wswire.ClientOptions{})
//	ws := wswire.NewConn(nc, br, true, 0)
//	sc := wswire.NewStreamConn(ws, wswire.StreamConfig{Client: true, StripStartTLS: true})
//	sess, err := xmpp.NewSession(ctx, domain, user, sc, xmpp.Secure, negotiator)
//
// # RFC 7395 framing
//
// What mellium writes is cut into top-level pieces (boshwire.Cutter) and
// each goes out as one text message, however many Writes it took: a stream
// header becomes <open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/> with
// the header's attributes, </stream:stream> becomes <close/>, a stanza
// without a namespace gets xmlns='jabber:client' and an element with the
// stream: prefix gets its declaration, so that every message is an XML
// document of its own. Whitespace keepalives become WebSocket pings.
//
// Each message read must be exactly one complete element. <open/> becomes a
// stream header (xmlns='jabber:client' and the open's attributes),
// <close/> the stream's end; other elements are passed on as they are, and
// on the client side a <starttls/> in stream features is taken out (Prosody
// 0.12 offers it, even required, inside WebSocket): the WebSocket
// connection carries the security. A message that is not one element, a
// binary message, or the connection's end without <close/> fails the read
// with an error wrapping one of the package's sentinels, and is counted in
// Stats.
//
// Close sends a close frame only once the XMPP stream was closed with
// <close/>; otherwise it drops the connection as a network failure would,
// so a session with stream management can be resumed.
package wswire
