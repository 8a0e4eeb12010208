package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmpp/jid"
)

// Errors of the plugins package: what a plugin may see from the Host.
var (
	// ErrBusy means the outbox is full: slow down (backpressure).
	ErrBusy = errors.New("plugins: outbox full")
	// ErrStopped means the bot is shutting down.
	ErrStopped = errors.New("plugins: bot stopped")
	// ErrNotRoom means the JID given is not a room the bot is in.
	ErrNotRoom = errors.New("plugins: not a room the bot is in")
	// ErrNoRights means the bot lacks the role or affiliation an action
	// needs in the room.
	ErrNoRights = errors.New("plugins: the bot lacks the rights in the room")
	// ErrUnknownOccupant means no occupant has that nick in the room.
	ErrUnknownOccupant = errors.New("plugins: no such occupant")
	// ErrNoJID means an action needs the occupant's real JID, which the
	// room does not show the bot.
	ErrNoJID = errors.New("plugins: the occupant's real JID is not known")
	// ErrUnsupported means the room or server does not offer what the
	// action needs (e.g. XEP-0425 retraction).
	ErrUnsupported = errors.New("plugins: not supported by the room or server")
	// ErrNoStore means the bot runs without a state store.
	ErrNoStore = errors.New("plugins: no state store configured")
	// ErrUnknownPlugin is returned for a plugin name that is not
	// registered.
	ErrUnknownPlugin = errors.New("plugins: unknown plugin")
)

// Plugin is the core interface: a name. Everything else a plugin does is
// found by type assertion on the optional interfaces below.
type Plugin interface {
	Name() string
}

// Starter is a plugin that runs: Start returns once it is running. ctx
// covers starting only; the plugin runs until Stop.
type Starter interface {
	Start(ctx context.Context, env Env) error
}

// Stopper is a plugin that must be stopped; Stop is safe twice.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Readier is a plugin that reports readiness for /-/ready and status.
type Readier interface {
	Ready() (ok bool, why string)
}

// Publisher is a plugin that can publish a payload on a subject: it carries
// out the rules' publish action and the audit events of other plugins.
type Publisher interface {
	Publish(subject string, data []byte) error
}

// StatusReporter adds lines to the bot's status (the status command),
// e.g. "nats: connected, relay lag 0".
type StatusReporter interface {
	Status() []string
}

// Env is what the bot gives a plugin when it starts.
type Env struct {
	// Logger is tagged with the plugin's name.
	Logger *slog.Logger
	// Registerer is where the plugin registers its metrics.
	Registerer prometheus.Registerer
	// Host is the running bot, as far as plugins may reach it.
	Host Host
}

// Core is what every plugin may read of the core configuration when it is
// built and checked.
type Core struct {
	// Path is the config file; Dir its directory, against which relative
	// file names are resolved.
	Path, Dir string
	// BotJID is the bot's bare JID.
	BotJID string
	// Rooms are the bare JIDs of the configured [[rooms]].
	Rooms []string
	// EmbeddedNATS is [embedded] nats.
	EmbeddedNATS bool
	// NATS is whether a NATS server is configured ([nats] url, or
	// [embedded] nats); known to config checks only.
	NATS bool
	// Component is true when the bot connects as an XEP-0114 component:
	// BotJID is then the component's domain, and messages may be sent
	// from any address on it (Message.From).
	Component bool
	// HABucket is [ha] bucket ("" without [ha]); HAReplicas is [ha]
	// replicas. A plugin that shares work between instances keeps what
	// they must agree on in buckets named after HABucket.
	HABucket   string
	HAReplicas int
}

// CheckFrom checks a from address a plugin's config gives for its
// messages: a bare address on the component's domain, and only when the
// bot is a component. It returns the address normalised.
func (c Core) CheckFrom(from string) (string, error) {
	if !c.Component {
		return "", errors.New(`sending from another address needs [xmpp] transport = "component" (a client account speaks from its own JID only)`)
	}
	j, err := jid.Parse(from)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q is not a valid JID: %w", from, err)
	case j.Resourcepart() != "":
		return "", fmt.Errorf("%q must be a bare address, without /%s", from, j.Resourcepart())
	case j.Domainpart() != c.BotJID:
		return "", fmt.Errorf("%q is not on the component's domain %s", from, c.BotJID)
	}
	return j.String(), nil
}

// Checker is handed to a plugin config's Check method by the config
// loader. Keys are paths relative to the plugin's table ("relay[0].to");
// Errorf names the line of the key (or of the nearest enclosing table
// written in the file), as every problem in `crier check` is named.
type Checker interface {
	// Errorf reports a problem with the key.
	Errorf(key, format string, args ...any)
	// Written reports whether the key was written in the file.
	Written(key string) bool
	// Resolve makes a file name relative to the config file's directory.
	Resolve(name string) string
	// ReadSecret reads a small secret file (a password, a token): trimmed,
	// size-limited, with an error that names the problem.
	ReadSecret(name string) (string, error)
	// CheckCAFile reports a problem with key when name is not a readable
	// PEM file with at least one certificate.
	CheckCAFile(key, name string)
	// Getenv reads the environment (tests replace it).
	Getenv(key string) string
	// Core is the core configuration.
	Core() Core
}

// Checked is implemented by a plugin's config struct that validates itself
// (and fills defaults that depend on other keys) after decoding.
type Checked interface {
	Check(c Checker)
}

// Spec registers a plugin.
type Spec struct {
	// Name is the plugin's name: its folder, its name in [bot] chain and
	// in logs and metrics. Lower case letters and digits.
	Name string
	// Table is the TOML table the plugin owns ("nats", "commands"); empty
	// when it has none. A table may be an array of tables ([[webhooks]]):
	// Config then returns a pointer to a slice.
	Table string
	// Config returns a pointer to a new config holding the defaults; the
	// loader decodes the table into it with the strict, line-numbered
	// decoder (unknown keys are errors), then calls Check when the value
	// implements Checked. Nil means the plugin has no config.
	Config func() any
	// New builds the plugin from its checked config (the value Config
	// returned, decoded). enabled is false when the config does not ask
	// for the plugin; an error is a configuration problem, reported as
	// crier check reports every problem.
	New func(cfg any, core Core) (p Plugin, enabled bool, err error)
	// Schema is the version of the plugin's state namespace (0: the plugin
	// keeps no state).
	Schema int
}

var (
	mu       sync.Mutex
	registry = map[string]Spec{}
	validNm  = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
)

// Register makes a plugin known; call it from the plugin's init. It panics
// on a duplicate or invalid name, or a table another plugin owns.
func Register(s Spec) {
	mu.Lock()
	defer mu.Unlock()
	if !validNm.MatchString(s.Name) {
		panic(fmt.Sprintf("plugins: invalid plugin name %q", s.Name))
	}
	if s.New == nil {
		panic("plugins: plugin " + s.Name + " has no New")
	}
	if _, dup := registry[s.Name]; dup {
		panic("plugins: duplicate plugin " + s.Name)
	}
	for _, o := range registry {
		if s.Table != "" && o.Table == s.Table {
			panic("plugins: table [" + s.Table + "] is owned by " + o.Name + " and " + s.Name)
		}
	}
	registry[s.Name] = s
}

// Names lists the registered plugins, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the registration of a plugin.
func Lookup(name string) (Spec, bool) {
	mu.Lock()
	defer mu.Unlock()
	s, ok := registry[name]
	return s, ok
}

// ByTable returns the plugin that owns a TOML table.
func ByTable(table string) (Spec, bool) {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range registry {
		if s.Table != "" && s.Table == table {
			return s, true
		}
	}
	return Spec{}, false
}

// Configs is what the config loader decoded for the plugins: a plugin's
// name to its checked config value (as Spec.Config returned it).
type Configs map[string]any

// Build returns the enabled plugins for the decoded configs, in name
// order. The error joins every plugin's error.
func Build(cfgs Configs, core Core) ([]Plugin, error) {
	var out []Plugin
	var errs []error
	for _, n := range Names() {
		p, ok, err := BuildOne(n, cfgs[n], core)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			out = append(out, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// BuildOne builds one plugin from its config (nil: the defaults).
func BuildOne(name string, cfg any, core Core) (Plugin, bool, error) {
	s, ok := Lookup(name)
	if !ok {
		return nil, false, fmt.Errorf("%w %q", ErrUnknownPlugin, name)
	}
	if cfg == nil && s.Config != nil {
		cfg = s.Config()
	}
	return s.New(cfg, core)
}

// HTTPServer is a plugin that serves HTTP paths on the operations listener
// ([http] listen), e.g. webhook receivers. Routes is asked on every
// request, so a reloaded instance's paths take over at once; a path under
// /-/ or /metrics is the bot's own and never reaches a plugin.
type HTTPServer interface {
	Routes() map[string]http.Handler
}

// Collector registers c on reg and returns it, or returns the collector of
// the same description already registered there, so that a plugin's
// metrics keep counting when its metrics are set up again on the same
// registry.
func Collector[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
	}
	return c
}
