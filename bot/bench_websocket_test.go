package bot

import (
	"testing"

	"crier/internal/config"
	"crier/internal/miniserver"
	"crier/internal/wswire"
)

// BenchmarkTransports measures the reply path with the bot connected over
// TCP, BOSH and WebSocket to the same kind of mini server, side by side in
// one run, as BenchmarkTCPvsBOSH does:
// replies/s and the round trip of each ping (p50, p99) with benchInFlight
// pings in flight from a client on TCP.
func BenchmarkTransports(b *testing.B) {
	for _, typ := range []string{"chat", "groupchat"} {
		for _, tr := range []string{config.TransportTCP, config.TransportBOSH, config.TransportWebSocket} {
			b.Run(typ+"/"+tr, func(b *testing.B) {
				srv := startMini(b, miniserver.Config{HTTPAddr: "127.0.0.1:0"})
				cfg := benchConfig(b, srv.Addr())
				cfg.XMPP.Transport = tr
				switch tr {
				case config.TransportBOSH:
					cfg.XMPP.BOSHURL = srv.BOSHURL()
				case config.TransportWebSocket:
					cfg.XMPP.WebSocketURL = srv.WebSocketURL()
				}
				bt := benchBot(b, srv, cfg)
				if tr == config.TransportWebSocket {
					bt.connMu.Lock()
					conn := bt.conn
					bt.connMu.Unlock()
					if _, ok := wswire.StatsOf(conn.Session.Conn()); !ok {
						b.Fatalf("the bot's connection (%T) is not over WebSocket", conn.Session.Conn())
					}
				}
				benchRoundTrips(b, srv, bt, typ, tr == config.TransportBOSH)
			})
		}
	}
}
