// Package bosh is crier's XEP-0124/XEP-0206 client: a net.Conn that speaks
// HTTP long-polling underneath, so mellium negotiates and runs an XMPP
// session over it exactly as over TCP.
//
//	nc, err := bosh.Dial(ctx, bosh.Config{URL: "https://example.org/http-bind", Domain: "example.org"})
//	if err != nil { ... }
//	s, err := xmpp.NewSession(ctx, domainJID, userJID, nc, xmpp.Secure,
//		xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
//			return xmpp.StreamConfig{Features: []xmpp.StreamFeature{xmpp.SASL("", pass, sasl.Plain), bind}}
//		}))
//	...
//	st, _ := bosh.StatsOf(nc) // HTTP requests per stanza, retries
//
// StatsOf also looks through wrappers that expose the wrapped conn with a
// NetConn() net.Conn method.
//
// # Outgoing
//
// Written bytes are cut into top-level pieces (internal/boshwire). The first
// stream header becomes the session creation request, a later one a restart
// (xmpp:restart='true'), each complete element goes raw into the next
// <body/>, and </stream:stream> becomes type='terminate'. Elements written
// while requests are in flight wait and travel together in the next body.
//
// # Incoming
//
// The children of each response are handed to mellium, in rid order, as a
// synthetic stream: a stream header (id = authid or sid, from = the domain)
// after the creation and each restart, then the children's bytes. After a
// restart the new header goes before the first element that arrives once
// the restart was written, whichever response carries it: Prosody answers
// a restart with the new features on the request it held before, not on
// the restart request. A <starttls/> offered in stream features is removed
// (Prosody 0.12 even marks it required): over BOSH the HTTP connection
// carries the security. A terminate from the connection manager becomes a
// stream error (its condition mapped by StreamCondition, the BOSH condition
// in the error text and in Stats) and then the end of the stream, so the
// session ends cleanly and can be reconnected. Once the client has sent its
// own terminate, any terminate ends the stream cleanly: ejabberd answers the
// request held before it with condition='other-request'.
//
// # Ordering
//
// At most 'hold'+1 requests are in flight (within 'requests'; one more to
// terminate), and one long poll is always pending so the server can push.
// A connection manager must see requests in rid order, and ejabberd stalls
// when rid N+1 reaches it before rid N (two HTTP connections racing). So
// request N+1 is sent only once request N has been answered, or the server
// acknowledged it (XEP-0124 §9.1 'ack', which the client asks for with
// ack='1'), or N was written to its connection (httptrace WroteRequest)
// long enough ago: the server's reaction time as measured in the session
// (from writing a request to the answer of the one held before it),
// smoothed, plus four times its variation, between 0.5 and 10 ms. There is
// no fixed gap. A failed request is sent again with the same rid
// (Config.MaxRetries times, with backoff; the first retry at once when an
// established connection broke, as a kept-alive connection closed by the
// server or a restarted server does); the connection manager answers a
// repeated rid with its buffered response. After a response that carried
// elements, the empty request that keeps one pending waits a couple of
// milliseconds for the reader's answer, which then travels as that request
// instead. Elements written while requests are in flight are batched, so
// under load a request carries many stanzas each way. Empty requests that
// the server answers at once are spaced by 'polling'. Close also closes the
// idle kept-alive connections of the session's HTTP client.
//
// # Acknowledgements and keys
//
// Requests carry 'ack' (the highest rid whose answer and every earlier one
// arrived) while an earlier answer is missing (XEP-0124 §9.2). Over plain
// http (Config.Keys, default KeysAuto) the session uses the key sequence of
// §15: newkey on the creation request, then each key hashing to the one
// before, a new sequence when one is used up; a retry repeats its key. Over
// https the connection protects the session and no keys are sent. Pausing
// (§10) is not used: crier never leaves a session idle on purpose.
//
// Conn implements io.ByteReader (mellium makes a new decoder after each
// restart and must not lose read-ahead) and deliberately not
// ConnectionState: there is no TLS channel binding over BOSH.
package bosh
