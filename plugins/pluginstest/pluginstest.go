package pluginstest

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"crier/internal/state"
	"crier/plugins"
)

// Published is one call of Host.Publish.
type Published struct {
	Subject string
	Data    []byte
}

// Host is a fake plugins.Host. The exported fields set its answers; set
// them before the plugin starts, or under Lock/Unlock afterwards.
type Host struct {
	mu   sync.Mutex
	cond *sync.Cond
	// Standby makes Speaking false.
	Standby atomic.Bool

	sent      []plugins.Message
	actions   []plugins.Action
	published []Published
	rooms     map[string]*plugins.RoomInfo
	occupants map[string][]plugins.Occupant
	iq        map[string]plugins.IQHandler
	features  []string
	disco     map[string]plugins.DiscoNode
	joins     []string
	leaves    []string
	reloads   int
	enabled   []string

	// SendErr, when set, is what Send returns at once; DoneErr is what a
	// successful Send's done receives.
	SendErr, DoneErr error
	// DoErr, when set, is what Do returns at once.
	DoErr error
	// JoinErr and LeaveErr are what JoinRoom and LeaveRoom return.
	JoinErr, LeaveErr error
	// PublishErr is what Publish returns; nil records the payload.
	// Default: plugins.ErrUnsupported (no publisher runs).
	PublishErr error
	// StatusValue is what Status returns, with Rooms filled from the
	// rooms added.
	StatusValue plugins.Status
	// CommandList is what Commands returns.
	CommandList []plugins.Command
	// PluginList is what Plugins returns; SetPluginEnabled changes its
	// Running flags (ErrUnknownPlugin for a name not in it).
	PluginList []plugins.PluginInfo
	// ReloadDiff and ReloadErr are ReloadPreview's answer; Reload returns
	// ReloadErr.
	ReloadDiff string
	ReloadErr  error
	// Store is the state namespace; nil makes State return
	// plugins.ErrNoStore.
	Store *Namespace
	// Shared answers SharedState; nil makes it return
	// plugins.ErrUnsupported (no NATS). Tests hand it namespaces of a
	// real KV store on an embedded NATS server.
	Shared func(bucket string) (state.Namespace, error)
}

// New returns a Host with no rooms, an empty store and no publisher.
func New() *Host {
	h := &Host{
		rooms:      map[string]*plugins.RoomInfo{},
		occupants:  map[string][]plugins.Occupant{},
		iq:         map[string]plugins.IQHandler{},
		disco:      map[string]plugins.DiscoNode{},
		PublishErr: plugins.ErrUnsupported,
		Store:      NewNamespace("test", 1),
	}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// Lock locks the Host's fields against the plugin's calls.
func (h *Host) Lock() { h.mu.Lock() }

// Unlock unlocks them.
func (h *Host) Unlock() { h.mu.Unlock() }

// AddRoom adds (or replaces) a room the bot is in.
func (h *Host) AddRoom(r plugins.RoomInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rooms[r.JID] = &r
}

// AddOccupant adds (or replaces, by nick) an occupant of a room.
func (h *Host) AddOccupant(o plugins.Occupant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.occupants[o.Room]
	list = slices.DeleteFunc(list, func(x plugins.Occupant) bool { return x.Nick == o.Nick })
	h.occupants[o.Room] = append(list, o)
}

// Sent returns a copy of the messages sent so far.
func (h *Host) Sent() []plugins.Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sent)
}

// Reset forgets the messages sent and actions done so far.
func (h *Host) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent, h.actions, h.published = nil, nil, nil
}

// WaitSent waits until at least n messages were sent and returns them all;
// the test fails after timeout.
func (h *Host) WaitSent(t testing.TB, n int, timeout time.Duration) []plugins.Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	stop := time.AfterFunc(timeout, func() {
		h.mu.Lock()
		h.cond.Broadcast()
		h.mu.Unlock()
	})
	defer stop.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.sent) < n {
		if !time.Now().Before(deadline) {
			var bodies []string
			for _, m := range h.sent {
				bodies = append(bodies, fmt.Sprintf("%s %s: %q", m.Type, m.To, m.Body))
			}
			t.Fatalf("waited %v for %d messages, got %d:\n%s", timeout, n, len(h.sent), strings.Join(bodies, "\n"))
		}
		h.cond.Wait()
	}
	return slices.Clone(h.sent)
}

// Actions returns a copy of the actions done so far.
func (h *Host) Actions() []plugins.Action {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.actions)
}

// Published returns a copy of what was published so far.
func (h *Host) Published() []Published {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.published)
}

// Joins returns the rooms JoinRoom was called for, as "room/nick".
func (h *Host) Joins() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.joins)
}

// Leaves returns the rooms LeaveRoom was called for.
func (h *Host) Leaves() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.leaves)
}

// Reloads returns how many times Reload was called.
func (h *Host) Reloads() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloads
}

// Features returns the features registered with HandleIQ and HandleDisco.
func (h *Host) Features() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.features)
}

// IQ calls the handler registered for the payload's element and typ, as
// the bot would for an iq from from. It fails with an error naming the
// element when no handler is registered (the bot answers
// service-unavailable).
func (h *Host) IQ(ctx context.Context, typ, from string, payload []byte) ([]byte, error) {
	var start struct{ XMLName xml.Name }
	if err := xml.Unmarshal(payload, &start); err != nil {
		return nil, fmt.Errorf("pluginstest: payload: %w", err)
	}
	h.mu.Lock()
	f := h.iq[iqKey(typ, start.XMLName)]
	h.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("pluginstest: no iq handler for %s %s", typ, start.XMLName.Space+" "+start.XMLName.Local)
	}
	return f(ctx, plugins.IQ{ID: "iq1", From: from, To: "crier@example.org/crier", Type: typ, Payload: payload, Name: start.XMLName})
}

// DiscoInfo answers disco#info on node for from through the node's
// registered DiscoNode; ok is false when none is registered or it answers
// item-not-found.
func (h *Host) DiscoInfo(from, node string) (identities [][3]string, features []string, ok bool) {
	h.mu.Lock()
	d := h.disco[node]
	h.mu.Unlock()
	if d == nil {
		return nil, nil, false
	}
	return d.Info(from, node)
}

// DiscoItems answers disco#items on node for from; ok is false when no
// DiscoNode is registered there.
func (h *Host) DiscoItems(from, node string) (items []plugins.DiscoItem, ok bool) {
	h.mu.Lock()
	d := h.disco[node]
	h.mu.Unlock()
	if d == nil {
		return nil, false
	}
	return d.Items(from, node), true
}

// DiscoNodes lists the nodes registered with HandleDisco, sorted.
func (h *Host) DiscoNodes() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.disco))
}

func iqKey(typ string, n xml.Name) string { return typ + " " + n.Space + " " + n.Local }

// Send records m and calls done(DoneErr) on a goroutine, unless SendErr is
// set.
func (h *Host) Send(m plugins.Message, done func(error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.SendErr != nil {
		return h.SendErr
	}
	h.sent = append(h.sent, m)
	h.cond.Broadcast()
	if done != nil {
		go done(h.DoneErr)
	}
	return nil
}

// Do records a and calls done(nil) on a goroutine, unless DoErr is set.
func (h *Host) Do(a plugins.Action, done func(error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.DoErr != nil {
		return h.DoErr
	}
	h.actions = append(h.actions, a)
	if done != nil {
		go done(nil)
	}
	return nil
}

// Occupant looks up an occupant added with AddOccupant.
func (h *Host) Occupant(room, nick string) (plugins.Occupant, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range h.occupants[room] {
		if o.Nick == nick {
			return o, true
		}
	}
	return plugins.Occupant{}, false
}

// Occupants lists a room's occupants.
func (h *Host) Occupants(room string) []plugins.Occupant {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.occupants[room])
}

// IsRoom reports whether jid was added with AddRoom (or joined).
func (h *Host) IsRoom(jid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.rooms[jid]
	return ok
}

// Rooms lists the rooms, sorted by JID.
func (h *Host) Rooms() []plugins.RoomInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.roomsLocked()
}

func (h *Host) roomsLocked() []plugins.RoomInfo {
	out := make([]plugins.RoomInfo, 0, len(h.rooms))
	for _, k := range slices.Sorted(maps.Keys(h.rooms)) {
		out = append(out, *h.rooms[k])
	}
	return out
}

// JoinRoom records the join and adds the room as joined by command.
func (h *Host) JoinRoom(room, nick, _ string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.JoinErr != nil {
		return h.JoinErr
	}
	h.joins = append(h.joins, room+"/"+nick)
	h.rooms[room] = &plugins.RoomInfo{JID: room, Nick: nick, State: "joining", ByCommand: true}
	return nil
}

// LeaveRoom records the leave and removes the room.
func (h *Host) LeaveRoom(room string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.LeaveErr != nil {
		return h.LeaveErr
	}
	if _, ok := h.rooms[room]; !ok {
		return plugins.ErrNotRoom
	}
	h.leaves = append(h.leaves, room)
	delete(h.rooms, room)
	return nil
}

// Status returns StatusValue with the rooms.
func (h *Host) Status() plugins.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.StatusValue
	s.Rooms = h.roomsLocked()
	return s
}

// Speaking reports !Standby: a test sets Standby to play an [ha] standby.
func (h *Host) Speaking() bool { return !h.Standby.Load() }

// HandleIQ registers h for iq requests.
func (h *Host) HandleIQ(typ string, name xml.Name, feature string, f plugins.IQHandler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.iq[iqKey(typ, name)] = f
	if feature != "" && !slices.Contains(h.features, feature) {
		h.features = append(h.features, feature)
	}
}

// HandleDisco registers d on node.
func (h *Host) HandleDisco(node string, d plugins.DiscoNode, features ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.disco[node] = d
	for _, f := range features {
		if !slices.Contains(h.features, f) {
			h.features = append(h.features, f)
		}
	}
}

// State returns Store, or plugins.ErrNoStore when it is nil.
func (h *Host) State() (state.Namespace, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Store == nil {
		return nil, plugins.ErrNoStore
	}
	return h.Store, nil
}

// SharedState calls Shared, or returns plugins.ErrUnsupported when it is
// nil.
func (h *Host) SharedState(bucket string) (state.Namespace, error) {
	h.mu.Lock()
	fn := h.Shared
	h.mu.Unlock()
	if fn == nil {
		return nil, plugins.ErrUnsupported
	}
	return fn(bucket)
}

// Publish records the payload unless PublishErr is set.
func (h *Host) Publish(subject string, data []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.PublishErr != nil {
		return h.PublishErr
	}
	h.published = append(h.published, Published{subject, slices.Clone(data)})
	return nil
}

// Commands returns CommandList, shared as the Host contract allows:
// SetCommands replaces it whole.
func (h *Host) Commands() []plugins.Command {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.CommandList
}

// SetCommands replaces CommandList (e.g. with the plugin's own commands,
// as the bot lists every running Commander's).
func (h *Host) SetCommands(c []plugins.Command) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.CommandList = slices.Clone(c)
}

// Plugins returns PluginList.
func (h *Host) Plugins() []plugins.PluginInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.PluginList)
}

// SetPluginEnabled sets Running on the named entry of PluginList.
func (h *Host) SetPluginEnabled(name string, on bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.PluginList {
		if h.PluginList[i].Name == name {
			h.PluginList[i].Running = on
			h.enabled = append(h.enabled, fmt.Sprintf("%s=%v", name, on))
			return nil
		}
	}
	return fmt.Errorf("%w %q", plugins.ErrUnknownPlugin, name)
}

// Toggles returns the SetPluginEnabled calls made, as "name=true".
func (h *Host) Toggles() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.enabled)
}

// ReloadPreview returns ReloadDiff, ReloadErr.
func (h *Host) ReloadPreview() (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ReloadDiff, h.ReloadErr
}

// Reload counts the call and returns ReloadErr.
func (h *Host) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloads++
	return h.ReloadErr
}

// Namespace is an in-memory state.Namespace: transactions work on a copy
// committed whole when the function returns nil. Expiries fire only when
// the test calls Expire.
type Namespace struct {
	mu       sync.Mutex
	name     string
	schema   int
	data     map[string][]byte
	expiry   map[string]time.Time
	onExpire func(string, []byte)
}

// NewNamespace returns an empty namespace at schema.
func NewNamespace(name string, schema int) *Namespace {
	return &Namespace{name: name, schema: schema, data: map[string][]byte{}, expiry: map[string]time.Time{}}
}

// Name returns the namespace's name.
func (n *Namespace) Name() string { return n.name }

// Schema returns the schema version.
func (n *Namespace) Schema() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.schema
}

// SetSchema sets the schema version.
func (n *Namespace) SetSchema(v int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.schema = v
	return nil
}

// View runs fn on the namespace, read-only.
func (n *Namespace) View(fn func(state.Tx) error) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fn(&tx{data: n.data, expiry: n.expiry, ro: true})
}

// Update runs fn on a copy and commits it when fn returns nil.
func (n *Namespace) Update(fn func(state.Tx) error) (err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := &tx{data: maps.Clone(n.data), expiry: maps.Clone(n.expiry)}
	if err := fn(t); err != nil {
		return err
	}
	n.data, n.expiry = t.data, t.expiry
	return nil
}

// OnExpire sets the expiry function.
func (n *Namespace) OnExpire(fn func(key string, value []byte)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onExpire = fn
}

// Expire deletes every key due at now and calls the OnExpire function for
// each, oldest first.
func (n *Namespace) Expire(now time.Time) {
	n.mu.Lock()
	type due struct {
		k  string
		v  []byte
		at time.Time
	}
	var list []due
	for k, at := range n.expiry {
		if !at.After(now) {
			list = append(list, due{k, n.data[k], at})
			delete(n.expiry, k)
			delete(n.data, k)
		}
	}
	fn := n.onExpire
	n.mu.Unlock()
	slices.SortFunc(list, func(a, b due) int { return a.at.Compare(b.at) })
	for _, d := range list {
		if fn != nil {
			fn(d.k, d.v)
		}
	}
}

// Keys lists the keys with the prefix, sorted.
func (n *Namespace) Keys(prefix string) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for k := range n.data {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Get returns a copy of a key's value.
func (n *Namespace) Get(key string) ([]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.data[key]
	return slices.Clone(v), ok
}

type tx struct {
	data   map[string][]byte
	expiry map[string]time.Time
	ro     bool
}

func checkKey(k string) error {
	if k == "" || len(k) > state.MaxKeyBytes {
		return fmt.Errorf("%w: %q", state.ErrBadKey, k)
	}
	return nil
}

func (t *tx) Get(key string) ([]byte, bool) {
	v, ok := t.data[key]
	return v, ok
}

func (t *tx) Put(key string, value []byte) error {
	if t.ro {
		return state.ErrReadOnly
	}
	if err := checkKey(key); err != nil {
		return err
	}
	t.data[key] = slices.Clone(value)
	delete(t.expiry, key)
	return nil
}

func (t *tx) PutExpiring(key string, value []byte, at time.Time) error {
	if err := t.Put(key, value); err != nil {
		return err
	}
	t.expiry[key] = at
	return nil
}

func (t *tx) Delete(key string) error {
	if t.ro {
		return state.ErrReadOnly
	}
	delete(t.data, key)
	delete(t.expiry, key)
	return nil
}

func (t *tx) Expiry(key string) (time.Time, bool) {
	at, ok := t.expiry[key]
	return at, ok
}

func (t *tx) ForEach(prefix string, fn func(key string, value []byte) error) error {
	keys := make([]string, 0, len(t.data))
	for k := range t.data {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn(k, t.data[k]); err != nil {
			return err
		}
	}
	return nil
}

// Compile-time guards.
var (
	_ plugins.Host    = (*Host)(nil)
	_ state.Namespace = (*Namespace)(nil)
	_ state.Tx        = (*tx)(nil)
)
