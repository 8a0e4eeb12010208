// Package plugins is the small interface between crier's core and its
// plugins. A plugin is a folder under plugins/ that registers a Factory in
// its init function; plugins/all imports every plugin with one blank import
// each. Optional behaviour is found by type assertion (Starter, Stopper,
// Readier), as the compile-time guards at the bottom of each plugin show.
//
//	func init() { plugins.Register("natsrelay", New) }
//	func New(cfg *config.Config) (plugins.Plugin, bool, error) { … }
package plugins

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"crier/internal/config"
)

// Errors a plugin may see from Env.Send.
var (
	// ErrBusy means the outbox is full: slow down (backpressure).
	ErrBusy = errors.New("plugins: outbox full")
	// ErrStopped means the bot is shutting down.
	ErrStopped = errors.New("plugins: bot stopped")
)

// Message is a stanza a plugin asks the bot to send.
type Message struct {
	To      string // bare or full JID; a room's bare JID for groupchat
	Type    string // chat | groupchat | headline | normal
	Body    string
	Subject string
	// OriginID is an XEP-0359 origin-id put on the stanza, so that a resent
	// copy can be recognised.
	OriginID string
}

// Event is a message the bot received, handed to plugins that asked for
// them (the reverse direction: XMPP to NATS).
type Event struct {
	Time    time.Time
	Type    string // groupchat | chat | normal | headline
	From    string // full JID
	Room    string // bare room JID, for room messages
	Nick    string
	Body    string
	Subject string
	ID      string
}

// Env is what the bot gives a plugin when it starts.
type Env struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Send queues m without blocking. done is called exactly once: with nil
	// once the XMPP server has the stanza, or with the reason it was lost.
	// Send returns ErrBusy when the outbox is full.
	Send func(m Message, done func(error)) error
	// Subscribe registers f for every message the bot receives. f must not
	// block.
	Subscribe func(f func(Event))
}

// Plugin is the core interface: a name.
type Plugin interface {
	Name() string
}

// Starter is a plugin that runs: Start returns once it is running.
type Starter interface {
	Start(ctx context.Context, env Env) error
}

// Stopper is a plugin that must be stopped; Stop is safe twice.
type Stopper interface {
	Stop(ctx context.Context) error
}

// Publisher is a plugin that can publish a payload on a subject: it carries
// out the rules' publish action.
type Publisher interface {
	Publish(subject string, data []byte) error
}

// Readier is a plugin that reports readiness for /-/ready.
type Readier interface {
	Ready() (bool, string)
}

// Factory builds a plugin from the config; enabled is false when the config
// does not ask for it.
type Factory func(cfg *config.Config) (p Plugin, enabled bool, err error)

var (
	mu        sync.Mutex
	factories = map[string]Factory{}
)

// Register makes a plugin known. It panics on a duplicate name.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[name]; dup {
		panic("plugins: duplicate plugin " + name)
	}
	factories[name] = f
}

// Names lists the registered plugins, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	out := make([]string, 0, len(factories))
	for n := range factories {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Build returns the enabled plugins for cfg, in name order.
func Build(cfg *config.Config) ([]Plugin, error) {
	var out []Plugin
	for _, n := range Names() {
		mu.Lock()
		f := factories[n]
		mu.Unlock()
		p, ok, err := f(cfg)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	return out, nil
}
