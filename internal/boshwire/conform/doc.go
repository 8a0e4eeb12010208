// Package conform is a conformance check of a BOSH connection manager
// against XEP-0124 and XEP-0206, written from the specifications' sections:
// a table of checks, each citing its section, run over plain HTTP with
// hand-made <body/> requests.
//
//	rs := conform.Run(ctx, conform.Target{URL: url, Domain: "localhost", User: "alice", Password: "alice"})
//	passed, total := conform.Score(rs)
//	fmt.Print(conform.Report(rs))
//
// Only MUST and SHOULD requirements are checked (key verification, a MAY,
// is left out). Some checks log in (SASL PLAIN, restart, bind) to have the server answer
// iq pings. Optional features (pause, ack) are checked only where the
// connection manager offers them. The mini server's connection manager is
// checked in the fast suite (internal/miniserver/boshcm), Prosody's in
// test/peers.
package conform
