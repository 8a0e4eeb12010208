// Package zeroloss tests crier's NATS to XMPP relay end to end, through the
// crier binary and its outside contract only: a config file, `crier run`,
// GET /metrics and /-/ready, a NATS server, an XMPP server and a receiving
// XMPP client.
//
// The zero-loss scenario publishes thousands of JetStream events while the
// XMPP server is stopped and started twice and crier is killed with SIGKILL
// and started again once; the receiver must get every event, and the copies
// it gets twice must stay within what the in-flight windows allow. The same
// scenario runs against the embedded mini server (TCP and BOSH) in this
// package, and against Prosody and ejabberd in test/peers (build tag
// peers), which is why the helpers live in a non-test file.
//
// BenchmarkRelay measures the relay's throughput and latency from a NATS
// publish to the receiving client; docs/BENCHMARKS.md has the results.
package zeroloss
