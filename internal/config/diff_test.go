package config

import (
	"errors"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	const base = `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "127.0.0.1:5222"
[http]
listen = "127.0.0.1:9090"
[limits]
sender_replies = "60/1m"
[[rooms]]
jid = "a@conference.example.org"
[[rules]]
name = "ping"
[nats]
url = "nats://127.0.0.1:4222"
`
	tests := []struct {
		name     string
		from, to string
		want     []string // fields named; none = reload allowed
	}{
		{"same", "", "", nil},
		{"rooms rules limits", `[[rooms]]
jid = "a@conference.example.org"`, `[[rooms]]
jid = "b@conference.example.org"
nick = "other"`, nil},
		{"password may change", `password = "pw"`, `password = "new"`, nil},
		{"keepalive may change", `address = "127.0.0.1:5222"`, `address = "127.0.0.1:5222"
keepalive = "1m"
subscriptions = "all"`, nil},
		{"limits may change", `sender_replies = "60/1m"`, `sender_replies = "1/1s"
max_body_bytes = 100`, nil},
		{"rules may change", `name = "ping"`, `name = "pong"
match = "x"`, nil},
		{"jid", `jid = "bot@example.org"`, `jid = "other@example.org"`, []string{"xmpp.jid"}},
		{"server", `address = "127.0.0.1:5222"`, `address = "127.0.0.1:5333"
resource = "r"
tls = "direct"
insecure_skip_verify = true
stream_management = false`, []string{"xmpp.resource", "xmpp.address", "xmpp.tls", "xmpp.insecure_skip_verify", "xmpp.stream_management"}},
		{"transport", `address = "127.0.0.1:5222"`, `address = "127.0.0.1:5222"
transport = "bosh"
bosh_url = "https://example.org/bosh"`, []string{"xmpp.transport", "xmpp.bosh_url"}},
		{"websocket", `address = "127.0.0.1:5222"`, `address = "127.0.0.1:5222"
transport = "websocket"
websocket_url = "wss://example.org/xmpp-websocket"
websocket_origin = "https://example.org"`, []string{"xmpp.transport", "xmpp.websocket_url", "xmpp.websocket_origin"}},
		{"http", `listen = "127.0.0.1:9090"`, `listen = "127.0.0.1:9091"`, []string{"http.listen"}},
		{"nats url may change (the relay is rebuilt)", `url = "nats://127.0.0.1:4222"`, `url = "nats://127.0.0.1:4223"`, nil},
		{"embedded", `[http]`, `[embedded]
xmpp = true
[[embedded.accounts]]
jid = "a@example.org"
password = "a"
[http]`, []string{"embedded.xmpp", "embedded.http", "embedded.accounts"}},
	}
	dir := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev := mustLoad(t, dir, base)
			next := mustLoad(t, dir, strings.Replace(base, tt.from, tt.to, 1))
			err := Diff(prev, next)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Diff = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrRestart) {
				t.Fatalf("Diff = %v, want ErrRestart", err)
			}
			_, list, _ := strings.Cut(err.Error(), "restart: ")
			if got := strings.Split(list, ", "); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Diff names %q, want %q", got, tt.want)
			}
		})
	}
	if Diff(nil, mustLoad(t, dir, base)) != nil {
		t.Error("Diff with a nil config should allow the load")
	}
}
