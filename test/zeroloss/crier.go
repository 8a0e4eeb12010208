package zeroloss

import (
	"fmt"
	"strings"
	"testing"

	"crier/internal/crierproc"
)

// XMPP is the [xmpp] section of a crier config. WriteConfig sets Resource
// to "zeroloss" when it is empty, so that other crier processes logged in
// to the same account do not replace this one.
type XMPP = crierproc.XMPP

// Relay is one [[nats.relay]] of a crier config. Empty fields are left
// out, so crier's defaults apply.
type Relay struct {
	Subject       string
	To            []string
	Type          string
	Format        string
	From          string // as a component: the address on its domain
	Stream        string
	Durable       string
	DeadLetter    string
	MaxBytes      int
	MaxAckPending int
	AckWait       string
	NakDelay      string
}

// Config is what the tests vary in crier's config file.
type Config struct {
	XMPP XMPP
	// NATSURL is the NATS server crier reads from.
	NATSURL string
	// DeadLetter is nats.dead_letter; empty leaves crier's default.
	DeadLetter string
	Relays     []Relay
}

// WriteConfig writes cfg as a crier config file in a new temporary
// directory and returns its path and the loopback address of its [http]
// listener.
func WriteConfig(t testing.TB, cfg Config) (path, httpAddr string) {
	t.Helper()
	x := cfg.XMPP
	if x.Resource == "" {
		x.Resource = "zeroloss"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[nats]\nurl = %q\n", cfg.NATSURL)
	if cfg.DeadLetter != "" {
		fmt.Fprintf(&b, "dead_letter = %q\n", cfg.DeadLetter)
	}
	for _, r := range cfg.Relays {
		fmt.Fprintf(&b, "\n[[nats.relay]]\nsubject = %q\nto = [", r.Subject)
		for i, to := range r.To {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", to)
		}
		b.WriteString("]\n")
		for _, kv := range []struct{ k, v string }{{"type", r.Type}, {"format", r.Format}, {"from", r.From}, {"stream", r.Stream},
			{"durable", r.Durable}, {"dead_letter", r.DeadLetter}, {"ack_wait", r.AckWait}, {"nak_delay", r.NakDelay}} {
			if kv.v != "" {
				fmt.Fprintf(&b, "%s = %q\n", kv.k, kv.v)
			}
		}
		if r.MaxBytes > 0 {
			fmt.Fprintf(&b, "max_bytes = %d\n", r.MaxBytes)
		}
		if r.MaxAckPending > 0 {
			fmt.Fprintf(&b, "max_ack_pending = %d\n", r.MaxAckPending)
		}
	}
	return crierproc.WriteConfig(t, x, b.String())
}
