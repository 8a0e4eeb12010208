package wswire_test

import (
	"fmt"

	"crier/internal/wswire"
)

// Prosody 0.12 may offer STARTTLS, even as required, in the stream
// features it sends over WebSocket; the client takes it out.
func ExampleStripStartTLS() {
	features := "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>" +
		"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>" +
		"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms>" +
		"</stream:features>"
	fmt.Println(string(wswire.StripStartTLS([]byte(features))))
	// Output:
	// <stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>
}

// AcceptKey is the server's answer to a client's Sec-WebSocket-Key (the
// example of RFC 6455 §1.3).
func ExampleAcceptKey() {
	fmt.Println(wswire.AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="))
	// Output:
	// s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
}
