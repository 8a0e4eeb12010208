package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"crier/internal/diag"
	"crier/plugins"
	"crier/rules"
)

// Values of XMPP.Transport.
const (
	// TransportTCP is XMPP over TCP, with STARTTLS or direct TLS.
	TransportTCP = "tcp"
	// TransportBOSH is XMPP over HTTP (XEP-0124/XEP-0206) at xmpp.bosh_url.
	TransportBOSH = "bosh"
	// TransportWebSocket is XMPP over WebSocket (RFC 7395) at
	// xmpp.websocket_url.
	TransportWebSocket = "websocket"
	// TransportComponent connects as an XEP-0114 external component:
	// xmpp.jid is the component's domain, the password its shared secret,
	// xmpp.address the server's component port.
	TransportComponent = "component"
)

// Values of XMPP.TLS.
const (
	// TLSStartTLS upgrades the connection with STARTTLS, which is required.
	TLSStartTLS = "starttls"
	// TLSDirect speaks TLS from the first byte (XEP-0368).
	TLSDirect = "direct"
	// TLSNone is plain text, allowed to loopback addresses only.
	TLSNone = "none"
)

// Values of XMPP.Subscriptions.
const (
	// SubscribeDomain accepts subscription requests from the bot's domain.
	SubscribeDomain = "domain"
	// SubscribeAll accepts every subscription request.
	SubscribeAll = "all"
	// SubscribeNone refuses every subscription request.
	SubscribeNone = "none"
)

// Defaults for keys that are not written in the file.
const (
	// DefaultResource is xmpp.resource.
	DefaultResource = "crier"
	// DefaultKeepalive is xmpp.keepalive.
	DefaultKeepalive = 30 * time.Second
	// DefaultKeepaliveTimeout is xmpp.keepalive_timeout.
	DefaultKeepaliveTimeout = 15 * time.Second
	// DefaultConnectTimeout is xmpp.connect_timeout.
	DefaultConnectTimeout = 20 * time.Second
	// DefaultEmbeddedHTTP is embedded.http when embedded.xmpp is on.
	DefaultEmbeddedHTTP = "127.0.0.1:5280"
	// DefaultOutboxQueue is limits.outbox_queue.
	DefaultOutboxQueue = 1000
	// DefaultMaxBodyBytes is limits.max_body_bytes.
	DefaultMaxBodyBytes = 3000
	// DefaultRoomQueue is limits.room_queue.
	DefaultRoomQueue = 100
)

// PasswordEnv is the environment variable that, when set, overrides
// xmpp.password and xmpp.password_file.
const PasswordEnv = "CRIER_XMPP_PASSWORD"

// Config is a loaded, validated config file. Relative file names in it
// (password_file, ca_file, creds_file, nkey_file) are already resolved
// against the directory of the file.
type Config struct {
	// Path is the file the config was read from, as given to Load.
	Path string `toml:"-"`

	XMPP     XMPP             `toml:"xmpp"`
	HTTP     HTTP             `toml:"http"`
	Embedded Embedded         `toml:"embedded"`
	Limits   Limits           `toml:"limits"`
	Rooms    []Room           `toml:"rooms"`
	Rules    []rules.Spec     `toml:"rules"`
	Cron     []rules.CronSpec `toml:"cron"`
	Bot      Bot              `toml:"bot"`
	HA       HA               `toml:"ha"`

	// Plugins holds each registered plugin's decoded and checked config,
	// by plugin name (the defaults when its table is not written). The
	// plugin owns the type.
	Plugins plugins.Configs `toml:"-"`
}

// ChainRules is the name of the rules engine in [bot] chain: always last.
const ChainRules = "rules"

// DefaultChain is [bot] chain when it is not written. Links that are not
// built into this binary are left out of the default.
var DefaultChain = []string{"moderator", "commands", ChainRules}

// Bot is the [bot] table.
type Bot struct {
	// StateDir is the state store's directory, relative to the config
	// file; empty keeps state in memory only (lost at exit).
	StateDir string `toml:"state_dir"`
	// Chain is the order of the message chain: plugin names, then
	// "rules", which is always last.
	Chain []string `toml:"chain"`
}

// XMPP is the [xmpp] table: the bot's account and how to reach its server.
type XMPP struct {
	JID string `toml:"jid"`
	// Password is resolved from password, password_file or the
	// CRIER_XMPP_PASSWORD environment variable.
	Password     Secret `toml:"password"`
	PasswordFile string `toml:"password_file"`
	Resource     string `toml:"resource"`
	// Transport is TransportTCP, TransportBOSH, TransportWebSocket or
	// TransportComponent.
	Transport string `toml:"transport"`
	// Address is host:port for tcp; empty means an SRV lookup.
	Address string `toml:"address"`
	// TLS is TLSStartTLS, TLSDirect or TLSNone (tcp and component; a
	// component has no STARTTLS and defaults to TLSDirect).
	TLS     string `toml:"tls"`
	BOSHURL string `toml:"bosh_url"`
	// WebSocketURL is the endpoint of transport "websocket" (wss://, or
	// ws:// to loopback only).
	WebSocketURL string `toml:"websocket_url"`
	// WebSocketOrigin, when set, is sent as the Origin of the WebSocket
	// handshake (for servers that check it).
	WebSocketOrigin    string `toml:"websocket_origin"`
	CAFile             string `toml:"ca_file"`
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
	// Keepalive is the interval between pings to the server; 0 is off.
	Keepalive Duration `toml:"keepalive"`
	// KeepaliveTimeout is how long a ping may go unanswered.
	KeepaliveTimeout Duration `toml:"keepalive_timeout"`
	// ConnectTimeout bounds one connection attempt, login included.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// Subscriptions says whose presence subscription requests are accepted:
	// SubscribeDomain (the bot's own domain), SubscribeAll or SubscribeNone.
	Subscriptions string `toml:"subscriptions"`
	// StreamManagement asks the server for XEP-0198 (acknowledgements and
	// resumption) when it offers it; on by default. Off, delivery is still
	// confirmed (by pings), but a lost connection is never resumed.
	StreamManagement bool `toml:"stream_management"`
	// From is, for transport "component", the address on the component's
	// domain the bot speaks from where no one addressed it: rooms (as
	// From/Resource), cron, relays and webhooks without a from of their
	// own. Default: crier@ the component's domain.
	From string `toml:"from"`
	// ServerDomain is, for transport "component", the domain of the
	// server the component is attached to: keepalive and delivery pings
	// go to it. Default: the component's domain without its first label.
	ServerDomain string `toml:"server_domain"`
	// Addresses, for transport "component", lists the bare addresses on
	// the domain that the bot answers at besides the domain and From;
	// empty answers at every address. A message to another one is
	// answered service-unavailable.
	Addresses []string `toml:"addresses"`
}

// Component reports whether the bot connects as an XEP-0114 component.
func (x XMPP) Component() bool { return x.Transport == TransportComponent }

// Addr returns the bot's bare JID. It is valid in a loaded Config.
func (x XMPP) Addr() jid.JID {
	j, _ := jid.Parse(x.JID)
	return j
}

// HTTP is the [http] table: the operations listener.
type HTTP struct {
	// Listen is host:port for /metrics, /-/healthy, /-/ready and /-/reload;
	// empty is off.
	Listen string `toml:"listen"`
}

// Embedded is the [embedded] table: in-process servers for demos and tests.
type Embedded struct {
	// XMPP starts the mini XMPP server on xmpp.address.
	XMPP bool `toml:"xmpp"`
	// NATS starts a NATS server on nats.url.
	NATS bool `toml:"nats"`
	// HTTP is the embedded XMPP server's HTTP listener (BOSH and web chat).
	HTTP string `toml:"http"`
	// TLSAddress is an optional direct TLS listener of the embedded server.
	TLSAddress string `toml:"tls_address"`
	// Address is the embedded server's client listener when the bot
	// connects as a component (xmpp.address is then the component
	// listener); empty means none.
	Address  string    `toml:"address"`
	Accounts []Account `toml:"accounts"`
}

// Account is one [[embedded.accounts]] table: a user of the embedded server.
type Account struct {
	JID      string `toml:"jid"`
	Password Secret `toml:"password"`

	Pos diag.Pos `toml:"-"`
}

// Limits is the [limits] table.
type Limits struct {
	// SenderReplies caps the replies to one sender per window; zero is off.
	SenderReplies rules.Rate `toml:"sender_replies"`
	// OutboxRate caps the stanzas sent to the server; zero is off.
	OutboxRate rules.Rate `toml:"outbox_rate"`
	// RoomRate caps the messages sent into one room; zero is off.
	RoomRate rules.Rate `toml:"room_rate"`
	// OutboxQueue is how many stanzas may wait to be sent.
	OutboxQueue int `toml:"outbox_queue"`
	// MaxBodyBytes is the longest body sent in one message; longer bodies
	// are split.
	MaxBodyBytes int `toml:"max_body_bytes"`
	// RoomQueue is how many messages may wait for a room to be joined.
	RoomQueue int `toml:"room_queue"`
}

// Room is one [[rooms]] table: a multi-user chat the bot joins.
type Room struct {
	JID string `toml:"jid"`
	// Nick defaults to the localpart of the bot's JID.
	Nick     string `toml:"nick"`
	Password Secret `toml:"password"`

	Pos diag.Pos `toml:"-"`
}

// Addr returns the room's bare JID. It is valid in a loaded Config.
func (r Room) Addr() jid.JID {
	j, _ := jid.Parse(r.JID)
	return j
}

// PluginCore is what plugins may read of the core config.
func (c *Config) PluginCore() plugins.Core {
	rooms := make([]string, 0, len(c.Rooms))
	for _, r := range c.Rooms {
		rooms = append(rooms, r.JID)
	}
	return plugins.Core{Path: c.Path, Dir: c.Dir(), BotJID: c.XMPP.JID, Rooms: rooms, EmbeddedNATS: c.Embedded.NATS,
		Component: c.XMPP.Component(), HABucket: c.HA.Bucket, HAReplicas: c.HA.Replicas}
}

// Dir returns the directory of the config file, against which relative
// file names are resolved.
func (c *Config) Dir() string {
	if c.Path == "" {
		return "."
	}
	return filepath.Dir(c.Path)
}

// String returns c as TOML with every secret redacted; it is safe to log.
func (c *Config) String() string { return c.Redacted() }

// Redacted returns c as TOML with every secret printed as "[redacted]".
func (c *Config) Redacted() string {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		// Secret redacts itself under every fmt verb too.
		return fmt.Sprintf("%+v", *c)
	}
	// Each plugin's table, under its own name; its secrets are Secrets
	// too.
	for _, n := range plugins.Names() {
		spec, _ := plugins.Lookup(n)
		v, ok := c.Plugins[n]
		if !ok || spec.Table == "" {
			continue
		}
		b.WriteString("\n")
		if err := toml.NewEncoder(&b).Encode(map[string]any{spec.Table: v}); err != nil {
			fmt.Fprintf(&b, "# [%s]: %+v\n", spec.Table, v)
		}
	}
	return b.String()
}

// defaults returns a Config holding the default of every key.
func defaults() *Config {
	return &Config{
		XMPP: XMPP{
			Resource:         DefaultResource,
			Transport:        TransportTCP,
			TLS:              TLSStartTLS,
			Keepalive:        Duration(DefaultKeepalive),
			KeepaliveTimeout: Duration(DefaultKeepaliveTimeout),
			ConnectTimeout:   Duration(DefaultConnectTimeout),
			Subscriptions:    SubscribeDomain,
			StreamManagement: true,
		},
		Limits: Limits{
			SenderReplies: rules.Rate{N: 60, Per: time.Minute},
			OutboxQueue:   DefaultOutboxQueue,
			MaxBodyBytes:  DefaultMaxBodyBytes,
			RoomQueue:     DefaultRoomQueue,
		},
	}
}

// Load reads, decodes and validates the config file at path. The error, if
// any, is a diag.List naming every problem as FILE:LINE: message. When the
// file parsed but has problems, Load returns the decoded config together
// with the error, so that a checker can report the rules' problems in the
// same run; such a config must not be run.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, diag.List{{File: path, Msg: "cannot read config: " + msg}}
	}
	return LoadBytes(path, data)
}

// LoadBytes decodes and validates data as the contents of file, which names
// the file in messages and anchors relative file names. The error, if any,
// is a diag.List naming every problem as FILE:LINE: message.
func LoadBytes(file string, data []byte) (*Config, error) {
	return load(file, data, os.Getenv)
}

// load is LoadBytes with the environment given.
func load(file string, data []byte, getenv func(string) string) (*Config, error) {
	c := defaults()
	c.Path = file
	d := &decoder{file: file}
	parsed := d.decode(data, c)
	if parsed {
		// Validate even after type errors, so that every problem shows at
		// once; keys that failed to decode are not reported twice.
		v := &validator{c: c, idx: d.idx, getenv: getenv, failed: d.failed}
		v.validate()
		d.errs.Merge(v.errs)
	}
	if err := d.errs.Err(); err != nil {
		if parsed {
			return c, err
		}
		return nil, err
	}
	return c, nil
}
