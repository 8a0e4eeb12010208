package crierproc

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestSumMetric(t *testing.T) {
	const exposition = `# HELP crier_rule_hits_total Actions produced by each rule.
# TYPE crier_rule_hits_total counter
crier_rule_hits_total{rule="language"} 1
crier_rule_hits_total{rule="ping"} 4
crier_rule_hits_total_extra 100
crier_connects_total 2
crier_dead{relay="a.>",reason="oversized"} 1
crier_dead{relay="a.>",reason="invalid-utf8"} 2
crier_dead{relay="b.>",reason="oversized"} 4
`
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"crier_rule_hits_total", nil, 5},
		{"crier_rule_hits_total", []string{"rule", "language"}, 1},
		{"crier_rule_hits_total", []string{"rule", "nope"}, 0},
		{"crier_connects_total", nil, 2},
		{"crier_missing_total", nil, 0},
		{"crier_dead", []string{"relay", "a.>"}, 3},
		{"crier_dead", []string{"reason", "oversized"}, 5},
		{"crier_dead", []string{"relay", "b.>", "reason", "oversized"}, 4},
	} {
		got, err := SumMetric(strings.NewReader(exposition), c.name, c.labels...)
		if err != nil || got != c.want {
			t.Errorf("SumMetric(%s, %q) = %v, %v; want %v", c.name, c.labels, got, err, c.want)
		}
	}
	if _, err := SumMetric(strings.NewReader("crier_x 1.2.3\n"), "crier_x"); err == nil {
		t.Errorf("SumMetric accepted a sample that is not a number")
	}
}

func TestConfigText(t *testing.T) {
	for _, c := range []struct {
		name string
		x    XMPP
		want map[string]any
	}{
		{"tcp", XMPP{JID: "crier@example.org", Password: "pw", Resource: "r", Address: "127.0.0.1:5222", CAFile: "/ca.pem"},
			map[string]any{"jid": "crier@example.org", "password": "pw", "resource": "r", "transport": "tcp",
				"address": "127.0.0.1:5222", "tls": "starttls", "ca_file": "/ca.pem"}},
		{"bosh", XMPP{JID: "crier@example.org", Password: "pw", Transport: "bosh", BOSHURL: "https://example.org/http-bind",
			Keepalive: "5s", KeepaliveTimeout: "10s"},
			map[string]any{"jid": "crier@example.org", "password": "pw", "transport": "bosh",
				"bosh_url": "https://example.org/http-bind", "keepalive": "5s", "keepalive_timeout": "10s"}},
		{"websocket", XMPP{JID: "crier@example.org", Password: "pw", Transport: "websocket", WebSocketURL: "wss://example.org/xmpp-websocket"},
			map[string]any{"jid": "crier@example.org", "password": "pw", "transport": "websocket",
				"websocket_url": "wss://example.org/xmpp-websocket"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := ConfigText(c.x, "127.0.0.1:9999", "[[rules]]\nname = \"ping\"\n")
			var got struct {
				XMPP  map[string]any
				HTTP  map[string]any
				Rules []map[string]any
			}
			if _, err := toml.Decode(text, &got); err != nil {
				t.Fatalf("decode:\n%s\n%v", text, err)
			}
			if len(got.XMPP) != len(c.want) {
				t.Errorf("[xmpp] = %v, want %v", got.XMPP, c.want)
			}
			for k, v := range c.want {
				if got.XMPP[k] != v {
					t.Errorf("xmpp.%s = %v, want %v", k, got.XMPP[k], v)
				}
			}
			if got.HTTP["listen"] != "127.0.0.1:9999" {
				t.Errorf("http.listen = %v", got.HTTP["listen"])
			}
			if len(got.Rules) != 1 || got.Rules[0]["name"] != "ping" {
				t.Errorf("rules = %v", got.Rules)
			}
		})
	}
}
