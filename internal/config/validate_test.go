package config

import (
	"strings"
	"testing"
)

// TestValidation runs one file per check. Each "# ERR: text" comment says
// that exactly one problem is reported at that line, containing text.
func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"valid minimal", `
[xmpp]
jid = "bot@example.org"
password = "pw"
`},
		{"jid missing", `
[xmpp] # ERR: xmpp.jid: must be set
password = "pw"
`},
		{"jid not bare", `
[xmpp]
jid = "bot@example.org/res" # ERR: must be a bare JID
password = "pw"
`},
		{"jid without localpart", `
[xmpp]
jid = "example.org" # ERR: needs a localpart
password = "pw"
`},
		{"jid invalid", `
[xmpp]
jid = "a@b@c" # ERR: not a valid JID
password = "pw"
`},
		{"password missing", `
[xmpp] # ERR: a password is required
jid = "bot@example.org"
`},
		{"password missing is fine when embedded", `
[xmpp]
jid = "bot@localhost"
address = "127.0.0.1:5222"
[embedded]
xmpp = true
`},
		{"resource empty", `
[xmpp]
jid = "bot@example.org"
password = "pw"
resource = "" # ERR: xmpp.resource: must not be empty
`},
		{"transport enum", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "udp" # ERR: must be "tcp", "bosh", "websocket" or "component", not "udp"
`},
		{"component jid with a localpart", `
[xmpp]
transport = "component"
jid = "bot@alerts.example.org" # ERR: a component's jid is its domain
password = "pw"
address = "127.0.0.1:5347"
tls = "none"
`},
		{"component needs an address", `
[xmpp] # ERR: xmpp.address: must be set when transport is "component"
transport = "component"
jid = "alerts.example.org"
password = "pw"
`},
		{"component has no starttls", `
[xmpp]
transport = "component"
jid = "alerts.example.org"
password = "pw"
address = "xmpp.example.org:5347"
tls = "starttls" # ERR: has no STARTTLS
`},
		{"component plain to a remote host", `
[xmpp]
transport = "component"
jid = "alerts.example.org"
password = "pw"
address = "xmpp.example.org:5347"
tls = "none" # ERR: allowed only to a loopback address
`},
		{"component needs a secret even when embedded", `
[xmpp] # ERR: the component's shared secret is required
transport = "component"
jid = "alerts.localhost"
address = "127.0.0.1:5347"
tls = "none"
[embedded]
xmpp = true
`},
		{"component from off the domain", `
[xmpp]
transport = "component"
jid = "alerts.example.org"
password = "pw"
address = "xmpp.example.org:5347"
from = "bot@example.org" # ERR: not on the component's domain alerts.example.org
`},
		{"component valid", `
[xmpp]
transport = "component"
jid = "alerts.example.org"
password = "pw"
address = "xmpp.example.org:5347"
from = "bot@alerts.example.org"
server_domain = "example.org"
`},
		{"from without component", `
[xmpp]
jid = "bot@example.org"
password = "pw"
from = "x@example.org" # ERR: is only for transport "component"
`},
		{"embedded address without component", `
[xmpp]
jid = "bot@localhost"
address = "127.0.0.1:5222"
[embedded]
xmpp = true
address = "127.0.0.1:5223" # ERR: is only for transport "component"
`},
		{"tls enum", `
[xmpp]
jid = "bot@example.org"
password = "pw"
tls = "ssl" # ERR: must be "starttls", "direct" or "none"
`},
		{"tls none to a remote host", `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "example.org:5222"
tls = "none" # ERR: allowed only to a loopback address
`},
		{"tls none with SRV lookup", `
[xmpp]
jid = "bot@example.org"
password = "pw"
tls = "none" # ERR: not the SRV lookup
`},
		{"tls none to loopback", `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "[::1]:5222"
tls = "none"
`},
		{"tls none to localhost", `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "localhost:5222"
tls = "none"
`},
		{"tls none when embedded", `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "0.0.0.0:5222"
tls = "none"
[embedded]
xmpp = true
`},
		{"address not host:port", `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "example.org" # ERR: not host:port
`},
		{"address port 0", `
[xmpp]
jid = "bot@example.org"
password = "pw"
address = "example.org:0" # ERR: invalid port
`},
		{"embedded needs address", `
[xmpp] # ERR: xmpp.address: must be set when embedded.xmpp is on
jid = "bot@example.org"
password = "pw"
[embedded]
xmpp = true
`},
		{"bosh without bosh_url discovers it", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "bosh"
`},
		{"embedded bosh needs bosh_url", `
[xmpp] # ERR: xmpp.bosh_url: must be set when transport is "bosh" and embedded.xmpp is on
jid = "bot@localhost"
password = "pw"
transport = "bosh"
address = "127.0.0.1:5222"
[embedded]
xmpp = true
`},
		{"bosh over https", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "bosh"
bosh_url = "https://example.org/http-bind"
`},
		{"bosh plain http to remote", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "bosh"
bosh_url = "http://example.org/http-bind" # ERR: use https
`},
		{"bosh plain http to loopback", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "bosh"
bosh_url = "http://127.0.0.1:5280/http-bind"
`},
		{"bosh url scheme", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "bosh"
bosh_url = "ftp://example.org/" # ERR: must be an http or https URL
`},
		{"websocket without websocket_url discovers it", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "websocket"
`},
		{"embedded websocket needs websocket_url", `
[xmpp] # ERR: xmpp.websocket_url: must be set when transport is "websocket" and embedded.xmpp is on
jid = "bot@localhost"
password = "pw"
transport = "websocket"
address = "127.0.0.1:5222"
[embedded]
xmpp = true
`},
		{"websocket over wss", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "websocket"
websocket_url = "wss://example.org/xmpp-websocket"
websocket_origin = "https://example.org"
`},
		{"websocket ws to remote", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "websocket"
websocket_url = "ws://example.org/xmpp-websocket" # ERR: use wss
`},
		{"websocket ws to loopback", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "websocket"
websocket_url = "ws://127.0.0.1:5280/xmpp-websocket"
`},
		{"websocket url scheme", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "websocket"
websocket_url = "https://example.org/xmpp-websocket" # ERR: must be a wss (or ws) URL
`},
		{"websocket origin", `
[xmpp]
jid = "bot@example.org"
password = "pw"
transport = "websocket"
websocket_url = "wss://example.org/xmpp-websocket"
websocket_origin = "example.org" # ERR: must be an origin
`},
		{"ca_file missing", `
[xmpp]
jid = "bot@example.org"
password = "pw"
ca_file = "nope.pem" # ERR: cannot read
`},
		{"ca_file not PEM", `
[xmpp]
jid = "bot@example.org"
password = "pw"
ca_file = "junk.pem" # ERR: holds no PEM certificate
`},
		{"ca_file good", `
[xmpp]
jid = "bot@example.org"
password = "pw"
ca_file = "ca.pem"
insecure_skip_verify = true
`},
		{"durations", `
[xmpp]
jid = "bot@example.org"
password = "pw"
keepalive = "-1s" # ERR: must not be negative
connect_timeout = 0 # ERR: must be positive
`},
		{"keepalive timeout needed when keepalive on", `
[xmpp]
jid = "bot@example.org"
password = "pw"
keepalive_timeout = "0s" # ERR: must be positive
`},
		{"keepalive off", `
[xmpp]
jid = "bot@example.org"
password = "pw"
keepalive = 0
keepalive_timeout = 0
`},
		{"bad duration", `
[xmpp]
jid = "bot@example.org"
password = "pw"
keepalive = "soon" # ERR: xmpp.keepalive: duration must look like
`},
		{"subscriptions enum", `
[xmpp]
jid = "bot@example.org"
password = "pw"
subscriptions = "friends" # ERR: must be "domain", "all" or "none"
`},
		{"http listen", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[http]
listen = "9090" # ERR: http.listen: "9090" is not host:port
`},
		{"http listen port 0", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[http]
listen = "127.0.0.1:0"
`},
		{"embedded addresses and accounts", `
[xmpp]
jid = "bot@localhost"
password = "pw"
address = "127.0.0.1:5222"
[embedded]
xmpp = true
http = "nowhere" # ERR: embedded.http: "nowhere" is not host:port
tls_address = "x:99999" # ERR: invalid port
[[embedded.accounts]]
jid = "alice@localhost"
password = "alice"
[[embedded.accounts]]
jid = "alice@localhost" # ERR: already defined at line 10
password = "" # ERR: embedded.accounts.password: must not be empty
[[embedded.accounts]]
jid = "localhost" # ERR: needs a localpart
password = "x"
`},
		{"limits", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[limits]
sender_replies = "many" # ERR: rate must be
outbox_rate = "10/1s"
outbox_queue = 0 # ERR: limits.outbox_queue: must be positive
max_body_bytes = 10 # ERR: at least 64
room_queue = -1 # ERR: must not be negative
`},
		{"rooms", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[[rooms]]
jid = "lobby@conference.example.org"
[[rooms]]
jid = "lobby@conference.example.org" # ERR: already listed at line 5
[[rooms]]
jid = "other@conference.example.org/nick" # ERR: must be a bare JID
[[rooms]]
jid = "conference.example.org" # ERR: needs a localpart
[[rooms]] # ERR: rooms.jid: must be set
nick = "x"
[[rooms]]
jid = "x@conference.example.org"
nick = "" # ERR: rooms.nick: must not be empty
`},
		{"inline rooms", `
[xmpp]
jid = "bot@example.org"
password = "pw"
rooms = 3 # ERR: unknown key xmpp.rooms
[[rooms]]
jid = "a@conference.example.org"
`},
		{"nats", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[nats]
url = "http://x" # ERR: must be a nats://
user = "me" # ERR: needs a password
token = "t" # ERR: choose one way to log in to NATS, not user and token
creds_file = "missing.creds" # ERR: cannot read
[[nats.relay]]
subject = "a..b" # ERR: not a valid NATS subject
to = ["ops@example.org", "@@"] # ERR: "@@" is not a valid JID
type = "fax" # ERR: must be "chat"
durable = "d" # ERR: needs stream
[[nats.relay]] # ERR: nats.relay.subject: must be set
to = [] # ERR: must name at least one JID
`},
		{"relay and webhook from needs a component", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[nats]
url = "nats://127.0.0.1:4222"
[[nats.relay]]
subject = "alerts.>"
to = ["ops@example.org"]
from = "disk@example.org" # ERR: nats.relay.from: sending from another address needs [xmpp] transport = "component"
[[webhooks]]
path = "/hooks/am"
to = ["ops@example.org"]
from = "am@example.org" # ERR: webhooks.from: sending from another address needs
`},
		{"relay and webhook from on the component's domain", `
[xmpp]
transport = "component"
jid = "alerts.example.org"
password = "pw"
address = "xmpp.example.org:5347"
[nats]
url = "nats://127.0.0.1:4222"
[[nats.relay]]
subject = "disk.>"
to = ["ops@example.org"]
from = "disk@alerts.example.org"
[[nats.relay]]
subject = "ci.>"
to = ["ops@example.org"]
from = "ci@example.org" # ERR: nats.relay.from: "ci@example.org" is not on the component's domain alerts.example.org
[[nats.relay]]
subject = "x.>"
to = ["ops@example.org"]
from = "x@alerts.example.org/r" # ERR: must be a bare address
[[webhooks]]
path = "/hooks/am"
to = ["ops@example.org"]
from = "alertmanager@alerts.example.org"
`},
		{"nats relay needs url", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[[nats.relay]] # ERR: nats.url: must be set when nats.relay is used
subject = "alerts.>"
to = ["ops@example.org"]
`},
		{"nats password without user", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[nats]
url = "nats://127.0.0.1:4222, tls://example.org:4443"
password = "p" # ERR: nats.password: needs nats.user
`},
		{"nats good", `
[xmpp]
jid = "bot@example.org"
password = "pw"
[nats]
url = "nats://127.0.0.1:4222"
user = "crier"
password_file = "nats.pass"
ca_file = "ca.pem"
[[nats.relay]]
subject = "alerts.>"
to = ["ops@example.org"]
type = "headline"
stream = "ALERTS"
durable = "crier-alerts"
template = "{{.Data}}"
`},
	}
	dir := t.TempDir()
	writeFile(t, dir, "ca.pem", testCA(t))
	writeFile(t, dir, "junk.pem", "not a certificate\n")
	writeFile(t, dir, "nats.pass", "natspw\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.TrimPrefix(tt.src, "\n")
			checkMarked(t, loadErrs(t, dir, src, noEnv), src)
		})
	}
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, t.TempDir(), `
[xmpp]
jid = "Bot@Example.org"
password = "pw"
address = "127.0.0.1:5222"
[embedded]
xmpp = true
nats = true
[[rooms]]
jid = "lobby@conference.example.org"
`)
	x := c.XMPP
	checks := []struct {
		name      string
		got, want any
	}{
		{"jid normalized", x.JID, "bot@example.org"},
		{"resource", x.Resource, DefaultResource},
		{"transport", x.Transport, TransportTCP},
		{"tls", x.TLS, TLSStartTLS},
		{"keepalive", x.Keepalive.Std(), DefaultKeepalive},
		{"keepalive_timeout", x.KeepaliveTimeout.Std(), DefaultKeepaliveTimeout},
		{"connect_timeout", x.ConnectTimeout.Std(), DefaultConnectTimeout},
		{"subscriptions", x.Subscriptions, SubscribeDomain},
		{"stream_management on", x.StreamManagement, true},
		{"embedded.http", c.Embedded.HTTP, DefaultEmbeddedHTTP},
		{"nats.url", pluginField(t, c, "natsrelay", "URL"), "nats://127.0.0.1:4222"},
		{"http.listen", c.HTTP.Listen, ""},
		{"sender_replies", c.Limits.SenderReplies.String(), "60/1m0s"},
		{"outbox_rate off", c.Limits.OutboxRate.IsZero(), true},
		{"outbox_queue", c.Limits.OutboxQueue, DefaultOutboxQueue},
		{"max_body_bytes", c.Limits.MaxBodyBytes, DefaultMaxBodyBytes},
		{"room_queue", c.Limits.RoomQueue, DefaultRoomQueue},
		{"room nick is the bot's localpart", c.Rooms[0].Nick, "bot"},
		{"room addr", c.Rooms[0].Addr().String(), "lobby@conference.example.org"},
		{"bot addr", x.Addr().Localpart(), "bot"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestDurationForms(t *testing.T) {
	c := mustLoad(t, t.TempDir(), `
[xmpp]
jid = "bot@example.org"
password = "pw"
keepalive = 45
keepalive_timeout = 2.5
connect_timeout = "1m30s"
`)
	if got := c.XMPP.Keepalive.String(); got != "45s" {
		t.Errorf("keepalive = %s, want 45s", got)
	}
	if got := c.XMPP.KeepaliveTimeout.String(); got != "2.5s" {
		t.Errorf("keepalive_timeout = %s, want 2.5s", got)
	}
	if got := c.XMPP.ConnectTimeout.String(); got != "1m30s" {
		t.Errorf("connect_timeout = %s, want 1m30s", got)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"30s", "30s", true},
		{"1h", "1h0m0s", true},
		{"30", "30s", true},
		{"0.5", "500ms", true},
		{"-2", "-2s", true},
		{"", "", false},
		{"abc", "", false},
		{"NaN", "", false},
		{"1e300", "", false},
	}
	for _, tt := range tests {
		d, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseDuration(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && d.String() != tt.want {
			t.Errorf("ParseDuration(%q) = %s, want %s", tt.in, d, tt.want)
		}
	}
}
