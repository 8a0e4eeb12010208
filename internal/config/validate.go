package config

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"crier/internal/diag"
	"crier/plugins"
)

// File size limits: a password or key file is small, and a path such as
// /dev/zero must not make Load read forever.
const (
	maxSecretFile = 64 << 10
	maxCAFile     = 4 << 20
	minBodyBytes  = 64
)

// validator checks a decoded Config, fills the defaults that depend on
// other keys and resolves passwords and file names.
type validator struct {
	c      *Config
	idx    lineIndex
	getenv func(string) string
	failed map[string]bool // paths that did not decode: already reported
	errs   diag.List
}

// indexSuffix matches the array index at the end of a path.
var indexSuffix = regexp.MustCompile(`\[[0-9]+\]$`)

// lineOf returns the line of path, or of the nearest enclosing table that
// was written in the file.
func (v *validator) lineOf(path string) int {
	for path != "" {
		if l := v.idx.line(path); l > 0 {
			return l
		}
		if loc := indexSuffix.FindStringIndex(path); loc != nil {
			path = path[:loc[0]]
		} else if i := strings.LastIndexByte(path, '.'); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
	return 0
}

// errorf reports a problem with the key at path, unless that key already
// failed to decode.
func (v *validator) errorf(path, format string, args ...any) {
	if v.failedAt(path) {
		return
	}
	v.errs.Addf(v.c.Path, v.lineOf(path), "%s: %s", display(path), fmt.Sprintf(format, args...))
}

// failedAt reports whether path or a table holding it failed to decode.
func (v *validator) failedAt(path string) bool {
	for path != "" {
		if v.failed[path] {
			return true
		}
		if loc := indexSuffix.FindStringIndex(path); loc != nil {
			path = path[:loc[0]]
		} else if i := strings.LastIndexByte(path, '.'); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
	return false
}

// written reports whether path was written in the file.
func (v *validator) written(path string) bool { return v.idx.line(path) > 0 }

// display drops array indexes from a path for messages; the line already
// says which element it is.
func display(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// at returns path[i].
func at(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

func (v *validator) validate() {
	v.xmpp()
	v.embedded()
	v.http()
	v.limits()
	v.rooms()
	v.bot()
	v.plugins()
	v.ha()
}

// bot checks the [bot] table: the state directory and the chain.
func (v *validator) bot() {
	b := &v.c.Bot
	if b.StateDir != "" {
		b.StateDir = v.resolve(b.StateDir)
	} else if v.written("bot.state_dir") {
		v.errorf("bot.state_dir", "must not be empty (leave it out to keep state in memory only)")
	}
	if !v.written("bot.chain") {
		b.Chain = nil
		for _, n := range DefaultChain {
			if _, ok := plugins.Lookup(n); ok || n == ChainRules {
				b.Chain = append(b.Chain, n)
			}
		}
		return
	}
	seen := map[string]bool{}
	names := plugins.Names()
	for i, n := range b.Chain {
		switch {
		case seen[n]:
			v.errorf("bot.chain", "%q is listed twice", n)
		case n == ChainRules:
			if i != len(b.Chain)-1 {
				v.errorf("bot.chain", "%q must be last: the rules engine always runs after the other links", ChainRules)
			}
		default:
			if _, ok := plugins.Lookup(n); !ok {
				msg := fmt.Sprintf("%q is not a plugin of this build (plugins: %s)", n, strings.Join(names, ", "))
				if s := closest(n, names); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", s)
				}
				v.errorf("bot.chain", "%s", msg)
			}
		}
		seen[n] = true
	}
	if !seen[ChainRules] {
		b.Chain = append(b.Chain, ChainRules)
	}
}

// closest returns the name of names nearest to n, or "".
func closest(n string, names []string) string {
	best, bestDist := "", 3
	for _, k := range names {
		if d := editDistance(k, n); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// plugins runs each plugin config's own checks, with errors at the lines
// of its table.
func (v *validator) plugins() {
	core := v.core()
	for _, n := range plugins.Names() {
		cfg, ok := v.c.Plugins[n]
		if !ok {
			continue
		}
		spec, _ := plugins.Lookup(n)
		if c, ok := cfg.(plugins.Checked); ok {
			c.Check(&checker{v: v, table: spec.Table, core: core})
		}
	}
}

// core is what plugins may read of the core config.
func (v *validator) core() plugins.Core {
	c := v.c.PluginCore()
	c.NATS = v.written("nats.url") || v.c.Embedded.NATS
	return c
}

// checker is the plugins.Checker of one plugin table.
type checker struct {
	v     *validator
	table string
	core  plugins.Core
}

func (c *checker) path(key string) string {
	switch {
	case key == "":
		return c.table
	case strings.HasPrefix(key, "["):
		return c.table + key
	}
	return c.table + "." + key
}

// Errorf reports a problem with the key of the plugin's table.
func (c *checker) Errorf(key, format string, args ...any) {
	c.v.errorf(c.path(key), format, args...)
}

// Written reports whether the key of the plugin's table is in the file.
func (c *checker) Written(key string) bool { return c.v.written(c.path(key)) }

// Resolve makes name relative to the config file's directory.
func (c *checker) Resolve(name string) string { return c.v.resolve(name) }

// ReadSecret reads a small secret file.
func (c *checker) ReadSecret(name string) (string, error) {
	s, err := readSecretFile(name)
	return string(s), err
}

// CheckCAFile checks a PEM file of CA certificates.
func (c *checker) CheckCAFile(key, name string) { c.v.caFile(c.path(key), name) }

// Getenv reads the environment.
func (c *checker) Getenv(key string) string { return c.v.getenv(key) }

// Core is the core configuration.
func (c *checker) Core() plugins.Core { return c.core }

func (v *validator) xmpp() {
	x := &v.c.XMPP
	if x.Component() {
		v.component()
	} else if bot, ok := v.bareJID("xmpp.jid", x.JID); ok {
		x.JID = bot.String()
	}
	if !x.Component() {
		for _, k := range []string{"xmpp.from", "xmpp.server_domain", "xmpp.addresses"} {
			if v.written(k) {
				v.errorf(k, `is only for transport "component"`)
			}
		}
	}
	v.xmppPassword()
	if x.Resource == "" {
		v.errorf("xmpp.resource", "must not be empty")
	} else if _, err := jid.New("a", "example.org", x.Resource); err != nil {
		v.errorf("xmpp.resource", "%q is not a valid resource: %v", x.Resource, err)
	}
	switch x.Transport {
	case TransportTCP, TransportBOSH, TransportWebSocket, TransportComponent:
	default:
		v.errorf("xmpp.transport", "must be %q, %q, %q or %q, not %q", TransportTCP, TransportBOSH, TransportWebSocket, TransportComponent, x.Transport)
	}
	switch x.TLS {
	case TLSStartTLS, TLSDirect, TLSNone:
	default:
		v.errorf("xmpp.tls", "must be %q, %q or %q, not %q", TLSStartTLS, TLSDirect, TLSNone, x.TLS)
	}
	if x.Address != "" {
		v.hostPort("xmpp.address", x.Address, false)
	} else if v.c.Embedded.XMPP && x.Transport == TransportTCP {
		v.errorf("xmpp.address", "must be set when embedded.xmpp is on: the embedded server listens there")
	} else if x.Component() {
		v.errorf("xmpp.address", `must be set when transport is "component": the server's component port (host:port)`)
	}
	if x.Component() && x.TLS == TLSNone && !v.c.Embedded.XMPP && x.Address != "" && !loopbackHostPort(x.Address) {
		v.errorf("xmpp.tls", `"none" sends the component secret's handshake and every stanza in clear; it is allowed only to a loopback address, not %s`, x.Address)
	}
	if x.Transport == TransportTCP && x.TLS == TLSNone && !v.c.Embedded.XMPP && !loopbackHostPort(x.Address) {
		v.errorf("xmpp.tls", `"none" sends the password in clear; it is allowed only to a loopback address, not %s`, orSRV(x.Address))
	}
	// Without a URL the transport discovers one from the domain's
	// host-meta (XEP-0156); the embedded server needs to know where to
	// serve.
	switch {
	case x.BOSHURL != "":
		v.boshURL(x.BOSHURL)
	case x.Transport == TransportBOSH && v.c.Embedded.XMPP:
		v.errorf("xmpp.bosh_url", `must be set when transport is "bosh" and embedded.xmpp is on: the embedded server serves BOSH there`)
	}
	switch {
	case x.WebSocketURL != "":
		v.webSocketURL(x.WebSocketURL)
	case x.Transport == TransportWebSocket && v.c.Embedded.XMPP:
		v.errorf("xmpp.websocket_url", `must be set when transport is "websocket" and embedded.xmpp is on: the embedded server serves WebSocket there`)
	}
	if x.WebSocketOrigin != "" {
		if u, err := url.Parse(x.WebSocketOrigin); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			v.errorf("xmpp.websocket_origin", "%q must be an origin such as https://example.org", x.WebSocketOrigin)
		}
	}
	if x.CAFile != "" {
		x.CAFile = v.resolve(x.CAFile)
		v.caFile("xmpp.ca_file", x.CAFile)
	}
	v.duration("xmpp.keepalive", x.Keepalive, false)
	v.duration("xmpp.keepalive_timeout", x.KeepaliveTimeout, x.Keepalive > 0)
	v.duration("xmpp.connect_timeout", x.ConnectTimeout, true)
	switch x.Subscriptions {
	case SubscribeDomain, SubscribeAll, SubscribeNone:
	default:
		v.errorf("xmpp.subscriptions", "must be %q, %q or %q, not %q", SubscribeDomain, SubscribeAll, SubscribeNone, x.Subscriptions)
	}
}

// xmppPassword resolves the bot's password: CRIER_XMPP_PASSWORD, else
// password_file, else password.
func (v *validator) xmppPassword() {
	x := &v.c.XMPP
	if x.Password != "" && x.PasswordFile != "" {
		v.errorf("xmpp.password_file", "set password or password_file, not both")
	}
	if x.PasswordFile != "" {
		x.PasswordFile = v.resolve(x.PasswordFile)
	}
	if env := v.getenv(PasswordEnv); env != "" {
		x.Password = Secret(env)
		return
	}
	if x.PasswordFile != "" && x.Password == "" {
		s, err := readSecretFile(x.PasswordFile)
		if err != nil {
			v.errorf("xmpp.password_file", "%v", err)
			return
		}
		x.Password = s
	}
	if x.Password == "" && (!v.c.Embedded.XMPP || x.Component()) && !v.failedAt("xmpp.password") {
		what := "a password"
		if x.Component() {
			what = "the component's shared secret"
		}
		v.errorf("xmpp", "%s is required: set password or password_file, or %s", what, PasswordEnv)
	}
}

// component checks the keys of transport "component": the JID is a
// domain, from is an address on it, TLS has no STARTTLS.
func (v *validator) component() {
	x := &v.c.XMPP
	if x.JID == "" {
		v.errorf("xmpp.jid", "must be set: the component's domain")
		return
	}
	d, err := jid.Parse(x.JID)
	switch {
	case err != nil:
		v.errorf("xmpp.jid", "%q is not a valid domain: %v", x.JID, err)
		return
	case d.Localpart() != "" || d.Resourcepart() != "":
		v.errorf("xmpp.jid", "%q: a component's jid is its domain (such as alerts.example.org), without a localpart or resource", x.JID)
		return
	}
	x.JID = d.String()
	if !v.written("xmpp.tls") {
		x.TLS = TLSDirect
	} else if x.TLS == TLSStartTLS {
		v.errorf("xmpp.tls", `a component connection (XEP-0114) has no STARTTLS: use "direct" (TLS from the first byte) or "none" (loopback only)`)
	}
	if x.From == "" {
		x.From = "crier@" + x.JID
	} else if f, ok := v.componentAddr("xmpp.from", x.From); ok {
		x.From = f
	}
	for i, a := range x.Addresses {
		if n, ok := v.componentAddr(at("xmpp.addresses", i), a); ok {
			x.Addresses[i] = n
		}
	}
	if x.ServerDomain == "" {
		if i := strings.IndexByte(x.JID, '.'); i > 0 && i < len(x.JID)-1 {
			x.ServerDomain = x.JID[i+1:]
		} else {
			v.errorf("xmpp.server_domain", "must be set: the server's domain cannot be told from the component's %q", x.JID)
		}
	} else if sd, err := jid.Parse(x.ServerDomain); err != nil || sd.Localpart() != "" || sd.Resourcepart() != "" {
		v.errorf("xmpp.server_domain", "%q is not a domain", x.ServerDomain)
	}
}

// componentAddr checks a from address of transport "component": a bare
// address on the component's domain. It returns it normalised.
func (v *validator) componentAddr(path, s string) (string, bool) {
	x := &v.c.XMPP
	if !x.Component() {
		v.errorf(path, `sending from another address needs transport "component" (a client account speaks from its own JID only)`)
		return "", false
	}
	j, err := jid.Parse(s)
	switch {
	case err != nil:
		v.errorf(path, "%q is not a valid JID: %v", s, err)
	case j.Resourcepart() != "":
		v.errorf(path, "%q must be a bare address, without /%s", s, j.Resourcepart())
	case j.Domainpart() != x.JID:
		v.errorf(path, "%q is not on the component's domain %s", s, x.JID)
	default:
		return j.String(), true
	}
	return "", false
}

func (v *validator) boshURL(raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.errorf("xmpp.bosh_url", "%q is not a URL: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf("xmpp.bosh_url", "%q must be an http or https URL", raw)
	case u.Host == "":
		v.errorf("xmpp.bosh_url", "%q has no host", raw)
	case u.Scheme == "http" && !loopbackHost(u.Hostname()):
		v.errorf("xmpp.bosh_url", "plain http to %s would send the password in clear; use https (http is allowed to loopback only)", u.Host)
	}
}

func (v *validator) webSocketURL(raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.errorf("xmpp.websocket_url", "%q is not a URL: %v", raw, err)
	case u.Scheme != "ws" && u.Scheme != "wss":
		v.errorf("xmpp.websocket_url", "%q must be a wss (or ws) URL", raw)
	case u.Host == "":
		v.errorf("xmpp.websocket_url", "%q has no host", raw)
	case u.Scheme == "ws" && !loopbackHost(u.Hostname()):
		v.errorf("xmpp.websocket_url", "ws to %s would send the password in clear; use wss (ws is allowed to loopback only)", u.Host)
	}
}

func (v *validator) embedded() {
	e := &v.c.Embedded
	if e.XMPP && e.HTTP == "" && !v.written("embedded.http") {
		e.HTTP = DefaultEmbeddedHTTP
	}
	if e.HTTP != "" {
		v.hostPort("embedded.http", e.HTTP, true)
	}
	if e.TLSAddress != "" {
		v.hostPort("embedded.tls_address", e.TLSAddress, true)
	}
	if e.Address != "" {
		v.hostPort("embedded.address", e.Address, true)
		if !v.c.XMPP.Component() {
			v.errorf("embedded.address", `is only for transport "component" (the embedded server's client listener is xmpp.address otherwise)`)
		}
	}
	seen := make(map[string]int)
	for i := range e.Accounts {
		a := &e.Accounts[i]
		p := at("embedded.accounts", i)
		if j, ok := v.bareJID(p+".jid", a.JID); ok {
			a.JID = j.String()
			if first, dup := seen[a.JID]; dup {
				v.errorf(p+".jid", "account %s is already defined at line %d", a.JID, first)
			} else {
				seen[a.JID] = v.lineOf(p + ".jid")
			}
		}
		if a.Password == "" {
			v.errorf(p+".password", "must not be empty")
		}
	}
}

func (v *validator) http() {
	if l := v.c.HTTP.Listen; l != "" {
		v.hostPort("http.listen", l, true)
	}
}

func (v *validator) limits() {
	l := &v.c.Limits
	if l.OutboxQueue <= 0 {
		v.errorf("limits.outbox_queue", "must be positive, not %d", l.OutboxQueue)
	}
	if l.MaxBodyBytes < minBodyBytes {
		v.errorf("limits.max_body_bytes", "must be at least %d, not %d", minBodyBytes, l.MaxBodyBytes)
	}
	if l.RoomQueue < 0 {
		v.errorf("limits.room_queue", "must not be negative, not %d", l.RoomQueue)
	}
}

func (v *validator) rooms() {
	nick := v.c.XMPP.Addr().Localpart()
	if v.c.XMPP.Component() {
		if j, err := jid.Parse(v.c.XMPP.From); err == nil {
			nick = j.Localpart() // the component's own address names it
		}
	}
	seen := make(map[string]int)
	for i := range v.c.Rooms {
		r := &v.c.Rooms[i]
		p := at("rooms", i)
		room, ok := v.bareJID(p+".jid", r.JID)
		if ok {
			r.JID = room.String()
			if first, dup := seen[r.JID]; dup {
				v.errorf(p+".jid", "room %s is already listed at line %d", r.JID, first)
			} else {
				seen[r.JID] = v.lineOf(p + ".jid")
			}
		}
		switch {
		case r.Nick == "" && v.written(p+".nick"):
			v.errorf(p+".nick", "must not be empty")
		case r.Nick == "":
			r.Nick = nick
		}
		if r.Nick != "" && ok {
			if _, err := room.WithResource(r.Nick); err != nil {
				v.errorf(p+".nick", "%q is not a valid nickname: %v", r.Nick, err)
			}
		}
	}
}

// bareJID checks that s is a bare JID with a localpart.
func (v *validator) bareJID(path, s string) (jid.JID, bool) {
	if s == "" {
		v.errorf(path, "must be set")
		return jid.JID{}, false
	}
	j, err := jid.Parse(s)
	switch {
	case err != nil:
		v.errorf(path, "%q is not a valid JID: %v", s, err)
	case j.Resourcepart() != "":
		v.errorf(path, "%q must be a bare JID, without /%s", s, j.Resourcepart())
	case j.Localpart() == "":
		v.errorf(path, "%q needs a localpart (name@%s)", s, j.Domainpart())
	default:
		return j, true
	}
	return jid.JID{}, false
}

// hostPort checks a host:port; port 0 is allowed for listeners only.
func (v *validator) hostPort(path, s string, listen bool) {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		v.errorf(path, "%q is not host:port", s)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !listen) {
		v.errorf(path, "%q has an invalid port", s)
	}
}

func (v *validator) duration(path string, d Duration, positive bool) {
	switch {
	case d < 0:
		v.errorf(path, "must not be negative, not %s", d)
	case d == 0 && positive:
		v.errorf(path, "must be positive")
	}
}

func (v *validator) caFile(path, name string) {
	pem, err := readFileLimit(name, maxCAFile)
	if err != nil {
		v.errorf(path, "%v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		v.errorf(path, "%s holds no PEM certificate", name)
	}
}

// resolve makes a file name relative to the config file's directory.
func (v *validator) resolve(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(v.c.Dir(), name)
}

// readSecretFile reads a password file, without its trailing newline.
func readSecretFile(name string) (Secret, error) {
	b, err := readFileLimit(name, maxSecretFile)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return Secret(s), nil
}

// readFileLimit reads a regular file of at most limit bytes.
func readFileLimit(name string, limit int64) ([]byte, error) {
	// Stat before opening: opening a named pipe would block.
	st, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, unwrapPath(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", name, unwrapPath(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return b, nil
}

// unwrapPath drops the "open NAME:" part of an *os.PathError, which the
// message names already.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// loopbackHostPort reports whether a host:port names a loopback host.
func loopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	return err == nil && loopbackHost(host)
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// orSRV describes an empty address.
func orSRV(addr string) string {
	if addr == "" {
		return "the SRV lookup of the domain"
	}
	return addr
}
