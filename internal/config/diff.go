package config

import (
	"fmt"
	"slices"
	"strings"
)

// Diff returns nil when a reload may apply next to a daemon running with
// prev. Otherwise it returns an error wrapping ErrRestart that names every
// changed field the daemon cannot change while it runs: the XMPP account
// and server (jid, resource, transport, address, tls, bosh_url,
// websocket_url, websocket_origin, ca_file, insecure_skip_verify,
// stream_management, a component's from), everything under [embedded], http.listen,
// bot.state_dir and [ha].
//
// Rooms, rules, cron, limits, keepalive and timeouts, subscriptions, the
// chain and every plugin table may change: a plugin whose table changed is
// built again and swapped in by the bot. The XMPP password may change too; it is used from
// the next login.
func Diff(prev, next *Config) error {
	if prev == nil || next == nil {
		return nil
	}
	var fields []string
	check := func(name string, changed bool) {
		if changed {
			fields = append(fields, name)
		}
	}
	a, b := prev.XMPP, next.XMPP
	check("xmpp.jid", a.JID != b.JID)
	check("xmpp.resource", a.Resource != b.Resource)
	check("xmpp.transport", a.Transport != b.Transport)
	check("xmpp.address", a.Address != b.Address)
	check("xmpp.tls", a.TLS != b.TLS)
	check("xmpp.bosh_url", a.BOSHURL != b.BOSHURL)
	check("xmpp.websocket_url", a.WebSocketURL != b.WebSocketURL)
	check("xmpp.websocket_origin", a.WebSocketOrigin != b.WebSocketOrigin)
	check("xmpp.ca_file", a.CAFile != b.CAFile)
	check("xmpp.insecure_skip_verify", a.InsecureSkipVerify != b.InsecureSkipVerify)
	check("xmpp.stream_management", a.StreamManagement != b.StreamManagement)
	// A component's rooms know it by the occupant address under from.
	check("xmpp.from", a.From != b.From)

	e, f := prev.Embedded, next.Embedded
	check("embedded.xmpp", e.XMPP != f.XMPP)
	check("embedded.nats", e.NATS != f.NATS)
	check("embedded.http", e.HTTP != f.HTTP)
	check("embedded.tls_address", e.TLSAddress != f.TLSAddress)
	check("embedded.address", e.Address != f.Address)
	check("embedded.accounts", !slices.EqualFunc(e.Accounts, f.Accounts, func(x, y Account) bool {
		return x.JID == y.JID && x.Password == y.Password
	}))

	check("http.listen", prev.HTTP.Listen != next.HTTP.Listen)

	check("bot.state_dir", prev.Bot.StateDir != next.Bot.StateDir)
	check("ha.bucket", prev.HA.Bucket != next.HA.Bucket)
	check("ha.lease", prev.HA.Lease != next.HA.Lease)
	check("ha.replicas", prev.HA.Replicas != next.HA.Replicas)

	if len(fields) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRestart, strings.Join(fields, ", "))
}
