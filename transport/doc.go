// Package transport is crier's connection layer: it dials the XMPP server
// (TCP with STARTTLS or direct TLS, SRV lookup when no address is given;
// BOSH; or WebSocket, RFC 7395, with the framing of internal/wswire),
// authenticates with SASL (SCRAM-SHA-256, then SCRAM-SHA-1, then
// PLAIN, the last only over TLS or an explicit loopback-only tls "none"),
// binds the configured resource and hands back a ready mellium session.
//
// Every element of the encrypted stream passes a Tap, in both directions,
// before mellium or the server sees it; Conn.Inject writes elements between
// mellium's own, never after the stream's closing tag. Stream management
// (XEP-0198) builds on these two. Whitespace the server sends between
// elements (allowed anywhere by RFC 6120, and fatal to mellium's
// negotiator before the stream features) is seen by the tap and taken out
// before mellium reads.
//
// Failures wrap one sentinel error each, so that the daemon can log one
// line naming the cause and count it under Reason(err):
//
//	conn, err := transport.Connect(ctx, transport.Options{
//		JID:      jid.MustParse("crier@example.org"),
//		Password: password,
//		Resource: "crier",
//		Tap: transport.TapFunc(func(dir transport.Direction, name xml.Name, raw []byte) {
//			metrics.Elements.WithLabelValues(dir.String(), name.Local).Inc()
//		}),
//		Logger: logger,
//	})
//	if err != nil {
//		logger.Error("cannot connect", "reason", transport.Reason(err), "err", err)
//		return err
//	}
//	defer conn.Close()
//	go conn.Session.Serve(handler)
package transport
