package natsrelay

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"mellium.im/xmpp/jid"

	"crier/internal/config"
	"crier/internal/diag"
	"crier/plugins"
)

// DefaultURL is nats.url when [embedded] nats is on and no url is written.
const DefaultURL = "nats://127.0.0.1:4222"

// Config is the [nats] table.
type Config struct {
	// URL is one server URL or a comma-separated list.
	URL  string `toml:"url"`
	User string `toml:"user"`
	// Password is resolved from password or password_file.
	Password     config.Secret `toml:"password"`
	PasswordFile string        `toml:"password_file"`
	Token        config.Secret `toml:"token"`
	CredsFile    string        `toml:"creds_file"`
	NKeyFile     string        `toml:"nkey_file"`
	CAFile       string        `toml:"ca_file"`
	Relay        []Relay       `toml:"relay"`
	// DeadLetter is the subject malformed relay messages are published to,
	// for every relay that does not set its own; empty means
	// "crier.deadletter".
	DeadLetter string `toml:"dead_letter"`
	// Publish, when set, is a text/template rendering the subject that
	// every message the bot receives is published to as a JSON event (the
	// XMPP to NATS direction), for example "xmpp.{{.Room}}.{{.Nick}}".
	Publish string `toml:"publish"`
	// Request, when set, is a subject on which NATS requests holding
	// {"to","type","body","subject"} are sent as XMPP messages; the reply
	// comes once the XMPP server has the message.
	Request string `toml:"request"`
}

// Relay is one [[nats.relay]] table: NATS messages forwarded to XMPP.
type Relay struct {
	Subject string   `toml:"subject"`
	To      []string `toml:"to"`
	// Type is the message type for users; empty means headline. Rooms get
	// groupchat whatever Type says, and Type "groupchat" makes every
	// recipient a room.
	Type string `toml:"type"`
	// From, when the bot is a component, is the address on its domain
	// the relayed messages come from (disk@alerts.example.org); empty is
	// the bot's own. Rooms always hear the bot's occupant address.
	From string `toml:"from"`
	// Stream, when set, consumes from JetStream with at-least-once delivery.
	Stream  string `toml:"stream"`
	Durable string `toml:"durable"`
	// Template is a text/template rendering the message body; empty means
	// the payload itself for format "text" and a one-line summary for
	// format "json".
	Template string `toml:"template"`
	// Format is how the payload is read: "text" (the default) or "json".
	Format string `toml:"format"`
	// Rooms lists further recipients' JIDs that are rooms, besides those on
	// a "conference." domain and the [[rooms]] the bot joins.
	Rooms []string `toml:"rooms"`
	// DeadLetter is the subject malformed messages are published to; empty
	// means nats.dead_letter.
	DeadLetter string `toml:"dead_letter"`
	// MaxBytes is the largest payload relayed; larger ones are dead
	// letters. Zero means 64 KiB.
	MaxBytes int `toml:"max_bytes"`
	// MaxAckPending bounds the JetStream messages in flight; zero means
	// 256.
	MaxAckPending int `toml:"max_ack_pending"`
	// AckWait is how long JetStream waits for an ack before redelivering;
	// zero means 30s.
	AckWait config.Duration `toml:"ack_wait"`
	// NakDelay is how long JetStream waits before redelivering a message
	// that could not be sent; zero means 5s.
	NakDelay config.Duration `toml:"nak_delay"`

	Pos diag.Pos `toml:"-"`
}

// ConfigOf returns the [nats] config among the plugins' configs (the
// defaults when there is none).
func ConfigOf(cfgs plugins.Configs) *Config {
	if c, ok := cfgs[Name].(*Config); ok {
		return c
	}
	return &Config{}
}

// Check validates the table, resolves its file names and reads its secret
// files; every problem is reported at its line.
func (n *Config) Check(c plugins.Checker) {
	if c.Core().EmbeddedNATS && n.URL == "" && !c.Written("url") {
		n.URL = DefaultURL
	}
	if n.URL != "" {
		checkURL(c, n.URL)
	} else if len(n.Relay) > 0 {
		c.Errorf("url", "must be set when nats.relay is used")
	}
	if n.Password != "" && n.PasswordFile != "" {
		c.Errorf("password_file", "set password or password_file, not both")
	}
	if n.PasswordFile != "" {
		n.PasswordFile = c.Resolve(n.PasswordFile)
		if n.Password == "" {
			s, err := c.ReadSecret(n.PasswordFile)
			if err != nil {
				c.Errorf("password_file", "%v", err)
			} else {
				n.Password = config.Secret(s)
			}
		}
	}
	if n.User != "" && n.Password == "" {
		c.Errorf("user", "needs a password (password or password_file)")
	}
	if n.User == "" && (n.Password != "" || n.PasswordFile != "") {
		key := "password"
		if !c.Written(key) {
			key = "password_file"
		}
		c.Errorf(key, "needs nats.user")
	}
	var methods []string
	for _, m := range []struct {
		key string
		set bool
	}{
		{"user", n.User != ""},
		{"token", n.Token != ""},
		{"creds_file", n.CredsFile != ""},
		{"nkey_file", n.NKeyFile != ""},
	} {
		if m.set {
			methods = append(methods, m.key)
		}
	}
	if len(methods) > 1 {
		c.Errorf(methods[1], "choose one way to log in to NATS, not %s", strings.Join(methods, " and "))
	}
	for _, f := range []struct {
		key  string
		name *string
	}{
		{"creds_file", &n.CredsFile},
		{"nkey_file", &n.NKeyFile},
	} {
		if *f.name != "" {
			*f.name = c.Resolve(*f.name)
			if _, err := c.ReadSecret(*f.name); err != nil {
				c.Errorf(f.key, "%v", err)
			}
		}
	}
	if n.CAFile != "" {
		n.CAFile = c.Resolve(n.CAFile)
		c.CheckCAFile("ca_file", n.CAFile)
	}
	for i := range n.Relay {
		n.Relay[i].check(c, fmt.Sprintf("relay[%d]", i))
	}
}

func checkURL(c plugins.Checker, raw string) {
	for part := range strings.SplitSeq(raw, ",") {
		part = strings.TrimSpace(part)
		u, err := url.Parse(part)
		switch {
		case err != nil:
			c.Errorf("url", "%q is not a URL: %v", part, err)
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
			c.Errorf("url", "%q must be a nats://, tls://, ws:// or wss:// URL", part)
		case u.Host == "":
			c.Errorf("url", "%q has no host", part)
		}
	}
}

// natsSubject is a NATS subject: dot-separated tokens without blanks, '>'
// only as the last token.
var natsSubject = regexp.MustCompile(`^([^.\s>]+\.)*([^.\s>]+|>)$`)

// relayTypes are the values of nats.relay.type.
var relayTypes = map[string]bool{"": true, "chat": true, "groupchat": true, "headline": true, "normal": true}

func (r *Relay) check(c plugins.Checker, p string) {
	switch {
	case r.Subject == "":
		c.Errorf(p+".subject", "must be set")
	case !natsSubject.MatchString(r.Subject):
		c.Errorf(p+".subject", "%q is not a valid NATS subject", r.Subject)
	}
	if len(r.To) == 0 {
		c.Errorf(p+".to", "must name at least one JID")
	}
	for i, to := range r.To {
		j, err := jid.Parse(to)
		if err != nil || to == "" {
			c.Errorf(p+".to", "%q is not a valid JID", to)
			continue
		}
		r.To[i] = j.String()
	}
	if !relayTypes[r.Type] {
		c.Errorf(p+".type", `must be "chat", "groupchat", "headline" or "normal", not %q`, r.Type)
	}
	if r.Durable != "" && r.Stream == "" {
		c.Errorf(p+".durable", "needs stream: durable consumers are JetStream only")
	}
	if r.From != "" {
		if f, err := c.Core().CheckFrom(r.From); err != nil {
			c.Errorf(p+".from", "%v", err)
		} else {
			r.From = f
		}
	}
}

var _ plugins.Checked = (*Config)(nil)
