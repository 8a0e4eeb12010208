package config

import (
	"crier/internal/diag"
	"os"
	"testing"
)

func FuzzLoad(f *testing.F) {
	if demo, err := os.ReadFile("../../config.toml"); err == nil {
		f.Add(demo)
	}
	for _, seed := range []string{
		"",
		"[xmpp]\njid = \"bot@example.org\"\npassword = \"pw\"\n",
		"[xmpp]\njid = 1\n[[rooms]]\njid = \"a@b\"\nnick = \"\"\n",
		"[[rules]]\nname = \"x\"\n[rules.not]\nmatch = \"y\"\n[[rules.actions]]\ndo = \"log\"\n",
		"[embedded]\naccounts = [{jid = \"a@b\", password = \"c\"}]\n",
		"a = \"\"\"\n[[x]]\n\"\"\"\n[xmpp]\nkeepalive = -1\n",
		"[nats]\nurl = \"nats://x:1\"\n[[nats.relay]]\nsubject = \">\"\nto = [\"a@b\"]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load("fuzz.toml", data, noEnv)
		if err != nil {
			if _, ok := err.(diag.List); !ok {
				t.Fatalf("error is %T, want diag.List", err)
			}
			_ = c // a parsed file with problems still returns its config for checkers
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		// A nil error promises a config the daemon can use as is.
		x := c.XMPP
		if j := x.Addr(); j.Localpart() == "" || j.Resourcepart() != "" {
			t.Fatalf("accepted jid %q", x.JID)
		}
		if x.Resource == "" || (x.Password == "" && !c.Embedded.XMPP) {
			t.Fatalf("accepted xmpp %+v", x)
		}
		if x.Transport != TransportTCP && x.Transport != TransportBOSH {
			t.Fatalf("accepted transport %q", x.Transport)
		}
		if x.TLS != TLSStartTLS && x.TLS != TLSDirect && x.TLS != TLSNone {
			t.Fatalf("accepted tls %q", x.TLS)
		}
		if x.Transport == TransportBOSH && x.BOSHURL == "" {
			t.Fatal("accepted bosh without a URL")
		}
		if x.ConnectTimeout <= 0 || x.Keepalive < 0 || (x.Keepalive > 0 && x.KeepaliveTimeout <= 0) {
			t.Fatalf("accepted durations %+v", x)
		}
		l := c.Limits
		if l.OutboxQueue <= 0 || l.MaxBodyBytes < minBodyBytes || l.RoomQueue < 0 {
			t.Fatalf("accepted limits %+v", l)
		}
		seen := map[string]bool{}
		for _, r := range c.Rooms {
			if r.Addr().Localpart() == "" || r.Nick == "" || seen[r.JID] {
				t.Fatalf("accepted room %+v", r)
			}
			seen[r.JID] = true
		}
		for _, a := range c.Embedded.Accounts {
			if a.Password == "" {
				t.Fatalf("accepted account %+v", a)
			}
		}
		for _, r := range c.Rules {
			if r.Pos.File != "fuzz.toml" {
				t.Fatalf("rule without Pos: %+v", r.Pos)
			}
		}
		_ = c.String()
	})
}
