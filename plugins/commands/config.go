package commands

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"mellium.im/xmpp/jid"

	"crier/plugins"
)

// Config is the [commands] table.
type Config struct {
	// Prefix starts a chat command ("!" makes "!help").
	Prefix string `toml:"prefix"`
	// Admins are bare JIDs with every right (level owner).
	Admins []string `toml:"admins"`
	// UnknownReply answers an unknown command with one short hint.
	UnknownReply bool `toml:"unknown_reply"`
	// Enabled runs the plugin; the built-in commands work without a
	// [commands] table.
	Enabled bool `toml:"enabled"`
	// Rate is the per-user command rate ("10/1m"; "0" is off).
	Rate Rate `toml:"rate"`
	// AdminsExemptFromRate lets admins run commands without the limit.
	AdminsExemptFromRate bool `toml:"admins_exempt_from_rate"`
	// ConfirmTimeout is how long a destructive chat command waits for
	// its confirmation.
	ConfirmTimeout Duration `toml:"confirm_timeout"`
	// SessionTimeout ends an idle XEP-0050 session.
	SessionTimeout Duration `toml:"session_timeout"`
	// MaxArgBytes bounds one argument's size.
	MaxArgBytes int `toml:"max_arg_bytes"`
}

// defaultConfig holds the defaults the loader decodes the table over.
func defaultConfig() *Config {
	return &Config{
		Prefix:               "!",
		UnknownReply:         true,
		Enabled:              true,
		Rate:                 Rate{N: 10, Per: time.Minute},
		AdminsExemptFromRate: true,
		ConfirmTimeout:       Duration(30 * time.Second),
		SessionTimeout:       Duration(5 * time.Minute),
		MaxArgBytes:          1024,
	}
}

// maxArgLimit bounds max_arg_bytes: a chat message is not a file upload.
const maxArgLimit = 64 << 10

// Check validates the table; the loader names each problem's line.
func (c *Config) Check(ck plugins.Checker) {
	switch {
	case c.Prefix == "":
		ck.Errorf("prefix", "prefix is empty: a command would be any message")
	case strings.ContainsFunc(c.Prefix, unicode.IsSpace):
		ck.Errorf("prefix", "prefix %q contains blanks", c.Prefix)
	case len(c.Prefix) > 8:
		ck.Errorf("prefix", "prefix %q is longer than 8 bytes", c.Prefix)
	}
	seen := map[string]bool{}
	for i, a := range c.Admins {
		b, err := bareJID(a)
		switch {
		case err != nil:
			ck.Errorf("admins", "admins[%d] %q is not a JID: %v", i, a, err)
		case b != a:
			ck.Errorf("admins", "admins[%d] %q must be a bare JID (%s)", i, a, b)
		case seen[b]:
			ck.Errorf("admins", "admins[%d] %q is listed twice", i, a)
		}
		seen[b] = true
	}
	if c.ConfirmTimeout <= 0 {
		ck.Errorf("confirm_timeout", "confirm_timeout must be positive, not %s", c.ConfirmTimeout)
	}
	if c.SessionTimeout <= 0 {
		ck.Errorf("session_timeout", "session_timeout must be positive, not %s", c.SessionTimeout)
	}
	if c.MaxArgBytes <= 0 || c.MaxArgBytes > maxArgLimit {
		ck.Errorf("max_arg_bytes", "max_arg_bytes must be between 1 and %d, not %d", maxArgLimit, c.MaxArgBytes)
	}
}

// bareJID parses s and returns its bare form; an error when s is not a
// JID with a localpart or domain.
func bareJID(s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", err
	}
	return j.Bare().String(), nil
}

// Rate is "N/window": at most N commands per window per user, e.g.
// "10/1m". "0" turns the limit off.
type Rate struct {
	N   int
	Per time.Duration
}

// Off reports whether the limit is off.
func (r Rate) Off() bool { return r.N == 0 }

// UnmarshalText parses "N/window" or "0".
func (r *Rate) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		*r = Rate{}
		return nil
	}
	ns, ws, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("rate %q: want N/window such as 10/1m, or 0", s)
	}
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if err != nil || n <= 0 || n > 1_000_000 {
		return fmt.Errorf("rate %q: %q is not a count between 1 and 1000000", s, ns)
	}
	w, err := time.ParseDuration(strings.TrimSpace(ws))
	if err != nil || w <= 0 {
		return fmt.Errorf("rate %q: %q is not a positive duration such as 1m", s, ws)
	}
	*r = Rate{N: n, Per: w}
	return nil
}

// MarshalText writes the rate back as UnmarshalText reads it.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// String returns "N/window" or "0".
func (r Rate) String() string {
	if r.Off() {
		return "0"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// Duration is a time.Duration written as "30s" in the config.
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as "30s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// String returns the duration as time.Duration writes it.
func (d Duration) String() string { return time.Duration(d).String() }
