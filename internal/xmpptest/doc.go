// Package xmpptest is a scripted XMPP user for tests. It logs in to any
// server (the mini server, Prosody, ejabberd) with STARTTLS or direct TLS,
// and then sends stanzas and waits for the ones a test expects:
//
//	c := xmpptest.Dial(t, xmpptest.Options{Addr: addr, JID: "alice@localhost",
//		Password: "alicepw", Resource: "test", RootCAs: pool})
//	if err := c.Join("lobby@conference.localhost", "alice"); err != nil {
//		t.Fatal(err)
//	}
//	_ = c.SendMessage("lobby@conference.localhost", "groupchat", "!ping")
//	c.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
//		return s.Type == "groupchat" && s.Body == "pong alice"
//	})
//
// The client reads the stream itself (mellium's Serve is not used), so IQ can
// wait for a response while other stanzas keep arriving for Expect. Every
// wait is bounded by a timeout; pings addressed to the client are answered.
//
// StartSpaceProxy puts a proxy between any client and server that writes
// whitespace after every top-level element one side sends, inside TLS too:
//
//	p := xmpptest.StartSpaceProxy(t, xmpptest.SpaceProxyOptions{
//		Upstream: srv.Addr(), RootCAs: srv.CertPool()})
//	// connect to p.Addr(), trusting p.CertPool()
package xmpptest
