package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"mellium.im/xmpp/jid"

	"crier/bot"
	"crier/internal/config"
)

// The environment crier send reads for the account (CRIER_XMPP_PASSWORD,
// config.PasswordEnv, as every command does).
const (
	envJID       = "CRIER_XMPP_JID"
	envAddress   = "CRIER_XMPP_ADDRESS"
	envTransport = "CRIER_XMPP_TRANSPORT"
	envTLS       = "CRIER_XMPP_TLS"
	envBOSHURL   = "CRIER_XMPP_BOSH_URL"
	envWSURL     = "CRIER_XMPP_WEBSOCKET_URL"
	envCAFile    = "CRIER_XMPP_CA_FILE"
	envFrom      = "CRIER_XMPP_FROM"
)

// maxSendBody is the largest body crier send reads from standard input.
const maxSendBody = 1 << 20

const sendAbout = `Signs in with the account, sends the message to every --to, and exits 0 only once the
server acknowledged all of them; 1 when one was not delivered (each is named), 2 on bad
usage. A room (a [[rooms]] JID of the config, a JID on a conference. domain, or every
--to with --type groupchat) is joined for the send and gets groupchat; users get --type.

The account comes from the flags, else the environment (CRIER_XMPP_JID, CRIER_XMPP_PASSWORD,
CRIER_XMPP_ADDRESS, CRIER_XMPP_TRANSPORT, CRIER_XMPP_TLS, CRIER_XMPP_BOSH_URL,
CRIER_XMPP_CA_FILE), else the config file: -c FILE, or ./config.toml when it exists and
no JID is given. No config file is needed. The password is never a flag (other users
can read a command line): use --password-file or CRIER_XMPP_PASSWORD.

The server's certificate must be trusted by the system or by --ca-file. With a config
whose [embedded] xmpp is on, the demo's certificate, which crier run keeps beside the
config (.crier/embedded-DOMAIN.pem), is trusted too.

As a component (--transport component, --jid the component's domain, the password its
shared secret, --address the server's component port), --from (CRIER_XMPP_FROM) picks the
address on the domain the messages come from; default [xmpp] from, else crier@DOMAIN.
Servers take one connection per component: Prosody refuses a second one by default, so
while a daemon is connected as the component, send through it (NATS, a webhook) instead.`

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// sendFlags are the account settings of crier send's flags and
// environment; empty means not given.
type sendFlags struct {
	jid, passwordFile, address, transport, tls, boshURL, wsURL, caFile, from string
}

// cmdSend is the one-shot push: it exits 0 only once the server
// acknowledged every message.
func cmdSend(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("send", "[-c FILE] [--jid JID] [--address HOST:PORT] [--from JID] --to JID [--to JID...] [--type T] [--subject S] [BODY|-]", sendAbout, stderr)
	path := configFlag(fs)
	var to listFlag
	fs.Var(&to, "to", "recipient JID, a user or a room's bare JID; repeat for several")
	typ := fs.String("type", "", "message type for users: chat, headline or normal (default chat); groupchat makes every --to a room")
	subject := fs.String("subject", "", "message subject")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var f sendFlags
	fs.StringVar(&f.jid, "jid", "", "the account's bare JID (env "+envJID+")")
	fs.StringVar(&f.passwordFile, "password-file", "", "file holding the account's password (env "+config.PasswordEnv+" holds the password itself)")
	fs.StringVar(&f.address, "address", "", "server host:port; empty looks up the domain's SRV records (env "+envAddress+")")
	fs.StringVar(&f.address, "server", "", "the same as --address")
	fs.StringVar(&f.transport, "transport", "", "tcp, bosh, websocket or component (env "+envTransport+"; default tcp)")
	fs.StringVar(&f.from, "from", "", "as a component: the address on its domain to send from (env "+envFrom+")")
	fs.StringVar(&f.tls, "tls", "", "starttls, direct, or none to a server on this machine (env "+envTLS+"; default starttls)")
	fs.StringVar(&f.boshURL, "bosh-url", "", "the BOSH URL, for --transport bosh (env "+envBOSHURL+")")
	fs.StringVar(&f.wsURL, "websocket-url", "", "the WebSocket URL, for --transport websocket (env "+envWSURL+")")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of a CA to trust besides the system's (env "+envCAFile+")")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if len(to) == 0 {
		return usageErr("crier send: --to is required (repeat it for several recipients)")
	}
	for _, t := range to {
		if _, err := jid.Parse(t); err != nil || t == "" {
			return usageErr("crier send: --to %q is not a JID", t)
		}
	}
	switch *typ {
	case "", "chat", "headline", "normal", "groupchat":
	default:
		return usageErr("crier send: --type %q: want chat, headline, normal or groupchat", *typ)
	}
	body, err := readBody(fs.Args(), stdin)
	if err != nil {
		return err
	}
	if body == "" && *subject == "" {
		return usageErr("crier send: nothing to send (give a BODY, or - for standard input)")
	}
	f.fromEnv(os.Getenv)

	explicit := false
	fs.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "c" || fl.Name == "config" })
	var base *config.Config
	if explicit || f.jid == "" {
		if _, err := os.Stat(*path); err == nil || explicit {
			cfg, err := config.Load(*path)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			base = cfg
		}
	}
	cfg, err := f.config(base)
	if err != nil {
		return err
	}

	msgs := make([]bot.OneShot, 0, len(to))
	for _, t := range to {
		mt := *typ
		if mt == "" {
			mt = "chat"
		}
		if isRoom(cfg, t) {
			mt = "groupchat"
		}
		msgs = append(msgs, bot.OneShot{To: t, Type: mt, Subject: *subject, Body: body})
	}

	log, _ := newLogger(stderr, "text", "warn")
	opts := bot.Options{Logger: log}
	certPath := ""
	if base != nil && base.Embedded.XMPP {
		certPath = demoCertPath(base)
		pool, err := demoRoots(certPath)
		switch {
		case err == nil:
			opts.RootCAs = pool
		case !errors.Is(err, os.ErrNotExist):
			fmt.Fprintf(stderr, "crier send: not trusting the demo's certificate: %v\n", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := bot.SendOnce(ctx, cfg, opts, msgs...); err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "\ncrier send: ")
		if certPath != "" && (strings.Contains(msg, "x509") || strings.Contains(msg, "certificate")) {
			msg += fmt.Sprintf("\ncrier send: the demo's certificate is %s: is `crier run -c %s` running?", certPath, base.Path)
		}
		return &exitError{code: 1, err: errors.New("crier send: " + msg)}
	}
	return nil
}

// readBody returns the message body: the arguments joined, or standard
// input for none or "-" (at most maxSendBody bytes, a trailing newline
// dropped).
func readBody(args []string, stdin io.Reader) (string, error) {
	if len(args) > 0 && !(len(args) == 1 && args[0] == "-") {
		return strings.Join(args, " "), nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, maxSendBody+1))
	if err != nil {
		return "", &exitError{code: 1, err: fmt.Errorf("crier send: reading the body: %w", err)}
	}
	if len(b) > maxSendBody {
		return "", usageErr("crier send: the body on standard input is longer than %d bytes", maxSendBody)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// fromEnv fills what the flags left empty from the environment.
func (f *sendFlags) fromEnv(getenv func(string) string) {
	for _, e := range []struct {
		v   *string
		env string
	}{{&f.jid, envJID}, {&f.address, envAddress}, {&f.transport, envTransport}, {&f.tls, envTLS}, {&f.boshURL, envBOSHURL}, {&f.wsURL, envWSURL}, {&f.caFile, envCAFile}, {&f.from, envFrom}} {
		if *e.v == "" {
			*e.v = getenv(e.env)
		}
	}
}

// config returns the config crier send connects with: base's [xmpp] (when
// there is a config file) with the flags and environment over it, checked
// by the same validation as a config file. The error is a usage error
// (exit 2) naming the flag to fix.
func (f *sendFlags) config(base *config.Config) (*config.Config, error) {
	x := map[string]any{}
	embedded := false
	if base != nil {
		b := base.XMPP
		x["jid"], x["resource"], x["transport"], x["tls"] = b.JID, b.Resource, b.Transport, b.TLS
		x["connect_timeout"], x["stream_management"] = b.ConnectTimeout.String(), b.StreamManagement
		x["insecure_skip_verify"] = b.InsecureSkipVerify
		for k, v := range map[string]string{"password": b.Password.Reveal(), "address": b.Address, "bosh_url": b.BOSHURL,
			"websocket_url": b.WebSocketURL, "websocket_origin": b.WebSocketOrigin, "ca_file": b.CAFile} {
			if v != "" {
				x[k] = v
			}
		}
		if b.Component() {
			x["from"], x["server_domain"] = b.From, b.ServerDomain
		}
		embedded = base.Embedded.XMPP
	}
	for k, v := range map[string]string{"jid": f.jid, "address": f.address, "transport": f.transport, "tls": f.tls, "bosh_url": f.boshURL,
		"websocket_url": f.wsURL, "ca_file": f.caFile, "from": f.from} {
		if v != "" {
			x[k] = v
		}
	}
	if f.jid != "" && base != nil && !strings.EqualFold(f.jid, base.XMPP.JID) {
		// Another account than the config's: not the config's password.
		delete(x, "password")
		embedded = false
	}
	password := ""
	if f.passwordFile != "" {
		p, err := readSecret(f.passwordFile)
		if err != nil {
			return nil, usageErr("crier send: --password-file: %v", err)
		}
		password, x["password"] = p, p
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(map[string]any{"xmpp": x, "embedded": map[string]any{"xmpp": embedded}}); err != nil {
		return nil, usageErr("crier send: %v", err)
	}
	cfg, err := config.LoadBytes("", buf.Bytes())
	if err != nil {
		return nil, usageErr("%s", sendProblems(err))
	}
	if password != "" {
		cfg.XMPP.Password = config.Secret(password) // the flag wins over the environment
	}
	if base != nil {
		cfg.Path = base.Path
		cfg.Rooms = base.Rooms
	}
	return cfg, nil
}

// sendHints names, for each [xmpp] key, the flag and variable that set it.
var sendHints = map[string]string{
	"xmpp.jid":           "--jid or " + envJID,
	"xmpp.address":       "--address or " + envAddress,
	"xmpp.transport":     "--transport or " + envTransport,
	"xmpp.tls":           "--tls or " + envTLS,
	"xmpp.bosh_url":      "--bosh-url or " + envBOSHURL,
	"xmpp.websocket_url": "--websocket-url or " + envWSURL,
	"xmpp.ca_file":       "--ca-file or " + envCAFile,
	"xmpp.from":          "--from or " + envFrom,
	"xmpp.password":      "--password-file or " + config.PasswordEnv,
	"xmpp":               "--password-file or " + config.PasswordEnv,
}

// sendProblems words the validation errors of crier send's settings with
// the flags that set them.
func sendProblems(err error) string {
	var lines []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line == "" {
			continue
		}
		key, _, _ := strings.Cut(line, ":")
		if h, ok := sendHints[key]; ok {
			line += " (" + h + ")"
		}
		lines = append(lines, "crier send: "+line)
	}
	return strings.Join(lines, "\n")
}

// readSecret reads a password file: its first line, at most 4 KiB.
func readSecret(path string) (string, error) {
	data, err := readPrivateFile(path, 4<<10)
	if err != nil {
		return "", err
	}
	s, _, _ := strings.Cut(string(data), "\n")
	s = strings.TrimRight(s, "\r")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// isRoom reports whether to is a room: one of cfg's [[rooms]], or a bare
// JID on a conference. domain (as the NATS relay decides).
func isRoom(cfg *config.Config, to string) bool {
	j, err := jid.Parse(to)
	if err != nil || j.Resourcepart() != "" {
		return false
	}
	for _, r := range cfg.Rooms {
		if r.Addr().Bare().Equal(j) {
			return true
		}
	}
	return strings.HasPrefix(j.Domainpart(), "conference.")
}
