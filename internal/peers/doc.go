// Package peers finds the real XMPP servers (Prosody, ejabberd) that
// scripts/peers started for the acceptance tests, and restarts them.
//
// Each instance lives in its own directory under $CRIER_PEERS_DIR (default
// /tmp/crier-peers) and describes itself in DIR/env: ports, URLs, the CA file
// of its self-signed certificate and its accounts. A test that needs a peer
// fails, with the command that starts it, when the peer is not running:
//
//	p := peers.Get(t, "prosody")
//	alice := p.Account(t, "alice")
//	c := xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: alice.JID,
//		Password: alice.Password, RootCAs: p.CertPool()})
//	p.Restart(t) // same ports, same accounts
package peers
