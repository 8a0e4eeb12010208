package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/config"
	"crier/internal/lease"
	"crier/internal/state"
	"crier/plugins"
	"crier/plugins/natsrelay"
)

// The bot's own state: rooms joined by command, in the namespace "core".
const (
	coreNamespace = "core"
	coreSchema    = 1
	roomKeyPrefix = "rooms/"
	cronKeyPrefix = "cron/"
	// StoreFile is the state store's file name in [bot] state_dir.
	StoreFile = "crier.db"
)

// openStore opens the state store of cfg ([bot] state_dir, or memory) and
// loads the rooms joined by command.
func (b *Bot) openStore(cfg *config.Config) error {
	switch {
	case cfg.HA.Enabled():
		// Instances of one [ha] bucket share their state (rooms joined by
		// command, grants, cron's last runs, the plugins' namespaces) in a
		// KV bucket beside the lease's, so a new leader takes over where
		// the old one was.
		nc, err := natsrelay.Connect(*natsrelay.ConfigOf(cfg.Plugins))
		if err != nil {
			return unavailable(fmt.Errorf("bot: [ha] needs NATS for the shared state: %w", err))
		}
		js, err := jetstream.New(nc)
		if err == nil {
			b.store, err = state.OpenKV(js, cfg.HA.Bucket+"-state", state.KVOptions{Replicas: cfg.HA.Replicas, Logger: b.log.With("component", "state")})
		}
		if err != nil {
			nc.Close()
			return fmt.Errorf("bot: [ha] shared state: %w%s", err, replicasHint(err, cfg.HA.Replicas))
		}
		b.haNC = nc
		if cfg.Bot.StateDir != "" {
			if err := b.migrateOnFirstStart(filepath.Join(cfg.Bot.StateDir, StoreFile), cfg.HA.Bucket+"-state"); err != nil {
				_ = b.store.Close()
				nc.Close()
				b.haNC = nil
				return err
			}
		}
	case cfg.Bot.StateDir == "":
		b.store = state.NewMemory()
		b.log.Info("no [bot] state_dir: state (rooms joined by command, grants) is kept in memory only and lost at exit")
	default:
		st, err := openStateFile(filepath.Join(cfg.Bot.StateDir, StoreFile), b.log)
		if err != nil {
			return unavailable(fmt.Errorf("bot: state store: %w", err))
		}
		b.store = st
	}
	ns, err := b.store.Namespace(coreNamespace, coreSchema)
	if err != nil {
		_ = b.store.Close()
		return fmt.Errorf("bot: state store: %w", err)
	}
	b.core = ns
	return b.loadCmdRooms()
}

// sharedStore returns the KV store in bucket that instances share
// (Host.SharedState), opening it on first use.
func (b *Bot) sharedStore(bucket string) (state.Store, error) {
	b.sharedMu.Lock()
	defer b.sharedMu.Unlock()
	if st, ok := b.shared[bucket]; ok {
		return st, nil
	}
	nc := b.haNC
	if nc == nil {
		nc = b.sharedNC
	}
	if nc == nil {
		nrc := natsrelay.ConfigOf(b.cfg.Load().cfg.Plugins)
		if nrc.URL == "" {
			return nil, fmt.Errorf("%w: a shared store needs [nats] or [ha]", plugins.ErrUnsupported)
		}
		c, err := natsrelay.Connect(*nrc)
		if err != nil {
			return nil, fmt.Errorf("bot: shared state: %w", err)
		}
		b.sharedNC, nc = c, c
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bot: shared state: %w", err)
	}
	st, err := state.OpenKV(js, bucket, state.KVOptions{Logger: b.log.With("component", "state", "bucket", bucket)})
	if err != nil {
		return nil, fmt.Errorf("bot: shared state %s: %w", bucket, err)
	}
	if b.shared == nil {
		b.shared = map[string]state.Store{}
	}
	b.shared[bucket] = st
	return st, nil
}

// replicasHint explains a bucket that could not be created with more
// replicas than the NATS servers can hold.
func replicasHint(err error, replicas int) string {
	if replicas <= 1 || err == nil {
		return ""
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"replicas", "insufficient resources", "peers", "non-clustered"} {
		if strings.Contains(msg, s) {
			return fmt.Sprintf(" (ha.replicas = %d needs a NATS cluster of at least %d JetStream servers)", replicas, replicas)
		}
	}
	return ""
}

// migrateOnFirstStart copies a single instance's state file into the [ha]
// bucket when the bucket holds nothing yet: the first start of an instance
// that moves to [ha] keeps its rooms, grants, cron runs and plugins' state.
// A bucket with state is left alone (the file is not read again); a file
// that cannot be copied stops the start rather than leave the state behind
// (`crier state migrate` does the same by hand, with a dry run).
func (b *Bot) migrateOnFirstStart(file, bucket string) error {
	if _, err := os.Stat(file); err != nil {
		return nil
	}
	if l, ok := b.store.(state.Lister); ok {
		if names, err := l.Namespaces(); err != nil {
			return fmt.Errorf("bot: [ha] shared state: %w", err)
		} else if len(names) > 0 {
			b.log.Info("[ha]: state is shared in NATS KV; the state file in bot.state_dir is not used", "bucket", bucket, "file", file)
			return nil
		}
	}
	src, err := openStateFile(file, b.log)
	if err != nil {
		return fmt.Errorf("bot: [ha]: the state file %s is to be copied into the empty bucket %s, but: %w", file, bucket, err)
	}
	defer src.Close()
	copies, err := state.Copy(b.store, src, state.CopyOptions{})
	if err != nil {
		return fmt.Errorf("bot: [ha]: copying the state file %s into the bucket %s: %w (crier state migrate can finish it)", file, bucket, err)
	}
	keys := 0
	for _, c := range copies {
		keys += c.Keys
	}
	b.log.Warn("[ha]: first start on an empty bucket: the state file was copied into it; from now on the bucket is the state", "file", file, "bucket", bucket, "namespaces", len(copies), "keys", keys)
	return nil
}

// loadCmdRooms reads the rooms joined by command from the store (again,
// when a new leader takes over state another instance wrote).
func (b *Bot) loadCmdRooms() error {
	rooms := map[string]RoomConfig{}
	err := b.core.View(func(tx state.Tx) error {
		return tx.ForEach(roomKeyPrefix, func(key string, value []byte) error {
			var rc RoomConfig
			if err := json.Unmarshal(value, &rc); err != nil || rc.JID == "" {
				b.log.Warn("state store: unreadable room entry, ignored", "key", key, "err", err)
				return nil
			}
			rooms[rc.JID] = rc
			return nil
		})
	})
	if err != nil {
		return err
	}
	b.roomMu.Lock()
	b.cmdRooms = rooms
	b.roomMu.Unlock()
	return nil
}

func (b *Bot) closeStore() {
	b.sharedMu.Lock()
	for bucket, st := range b.shared {
		if err := st.Close(); err != nil {
			b.log.Warn("shared state store did not close cleanly", "bucket", bucket, "err", err)
		}
	}
	b.shared = nil
	if b.sharedNC != nil {
		b.sharedNC.Close()
		b.sharedNC = nil
	}
	b.sharedMu.Unlock()
	if b.store != nil {
		if err := b.store.Close(); err != nil {
			b.log.Warn("state store did not close cleanly", "err", err)
		}
	}
	if b.haNC != nil {
		b.haNC.Close()
	}
}

// stopPlugins stops plugins in reverse order, once.
func (b *Bot) stopPlugins() { b.pluginsStop.Do(b.plugins.stopAll) }

// wantedRooms is the configured rooms, without those left by command, and
// the rooms joined by command; none while this instance is a standby.
func (b *Bot) wantedRooms(cfg *config.Config) []RoomConfig {
	if !b.leader() {
		return nil // a standby is in no room
	}
	b.roomMu.Lock()
	defer b.roomMu.Unlock()
	var out []RoomConfig
	seen := map[string]bool{}
	for _, rc := range roomConfigs(cfg) {
		if b.leftRooms[rc.JID] {
			continue
		}
		seen[rc.JID] = true
		out = append(out, rc)
	}
	keys := make([]string, 0, len(b.cmdRooms))
	for k := range b.cmdRooms {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !seen[k] {
			out = append(out, b.cmdRooms[k])
		}
	}
	return out
}

// errBadRoom is returned for a room JID that cannot be joined.
var errBadRoom = errors.New("bot: not a room JID")

// joinByCommand joins a room and keeps it in the store until left by
// command.
func (b *Bot) joinByCommand(room, nick, password string) error {
	j, err := jid.Parse(room)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" {
		return fmt.Errorf("%w: %q (want room@service)", errBadRoom, room)
	}
	room = j.String()
	if nick == "" {
		nick = b.rooms.nick(room)
	}
	if nick == "" {
		nick = b.defaultNick()
	}
	if _, err := j.WithResource(nick); err != nil {
		return fmt.Errorf("bot: %q is not a valid nickname: %w", nick, err)
	}
	rc := RoomConfig{JID: room, Nick: nick, Password: password}
	data, _ := json.Marshal(rc)
	if err := b.core.Update(func(tx state.Tx) error { return tx.Put(roomKeyPrefix+room, data) }); err != nil {
		b.hm.storeErrors.WithLabelValues("update").Inc()
		return fmt.Errorf("bot: keeping the room in the state store: %w", err)
	}
	b.roomMu.Lock()
	b.cmdRooms[room] = rc
	delete(b.leftRooms, room)
	b.roomMu.Unlock()
	b.rooms.Set(b.wantedRooms(b.cfg.Load().cfg))
	b.rooms.markByCommand(room)
	b.log.Info("joining room by command", "room", room, "nick", nick)
	return nil
}

// leaveByCommand leaves a room: one joined by command is forgotten, a
// configured one stays left until the next restart or reload of a config
// that lists it again.
func (b *Bot) leaveByCommand(room string) error {
	room = bareOf(room)
	if room == "" || !b.rooms.isRoom(room) {
		return fmt.Errorf("%w: %s", plugins.ErrNotRoom, room)
	}
	b.roomMu.Lock()
	_, byCmd := b.cmdRooms[room]
	b.roomMu.Unlock()
	if byCmd {
		if err := b.core.Update(func(tx state.Tx) error { return tx.Delete(roomKeyPrefix + room) }); err != nil {
			b.hm.storeErrors.WithLabelValues("update").Inc()
			return fmt.Errorf("bot: removing the room from the state store: %w", err)
		}
	}
	b.roomMu.Lock()
	delete(b.cmdRooms, room)
	configured := false
	for _, rc := range b.cfg.Load().cfg.Rooms {
		configured = configured || strings.EqualFold(rc.JID, room)
	}
	if configured {
		b.leftRooms[room] = true
	}
	b.roomMu.Unlock()
	b.rooms.Set(b.wantedRooms(b.cfg.Load().cfg))
	b.log.Info("left room by command", "room", room, "configured", configured)
	return nil
}

// reloadPreview describes what reloading the config file would change.
func (b *Bot) reloadPreview() (string, error) {
	old := b.cfg.Load().cfg
	if old.Path == "" {
		return "", fmt.Errorf("%w: the configuration was not read from a file", ErrReloadRefused)
	}
	next, err := config.Load(old.Path)
	if err != nil {
		return "", err
	}
	if err := config.Diff(old, next); err != nil {
		return "", fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	return textDiff(old.Redacted(), next.Redacted()), nil
}

// textDiff lists the lines of b not in a (+) and of a not in b (-), each
// under its TOML table header; "no change" when there are none.
func textDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	count := func(lines []string) map[string]int {
		m := map[string]int{}
		for _, l := range lines {
			m[sectioned(lines, l)]++
		}
		return m
	}
	ca, cb := count(la), count(lb)
	var out []string
	emit := func(lines []string, other map[string]int, sign string) {
		for _, l := range lines {
			k := sectioned(lines, l)
			if strings.TrimSpace(l) == "" {
				continue
			}
			if other[k] > 0 {
				other[k]--
				continue
			}
			out = append(out, sign+" "+k)
		}
	}
	cb2 := map[string]int{}
	for k, v := range cb {
		cb2[k] = v
	}
	emit(la, cb2, "-")
	emit(lb, ca, "+")
	if len(out) == 0 {
		return "no change"
	}
	return strings.Join(out, "\n")
}

// sectioned prefixes a key line with its table (the nearest header above
// it), so that the same key in two tables differs.
func sectioned(lines []string, l string) string {
	t := strings.TrimSpace(l)
	if strings.HasPrefix(t, "[") {
		return t
	}
	sec := ""
	for _, x := range lines {
		xt := strings.TrimSpace(x)
		if strings.HasPrefix(xt, "[") {
			sec = xt
		}
		if x == l {
			break
		}
	}
	return sec + " " + t
}

// cronHistory keeps cron jobs' last runs in the store (rules.History).
type cronHistory struct{ b *Bot }

// Last returns the scheduled time of the job's last run.
func (h cronHistory) Last(job string) (time.Time, bool) {
	var at time.Time
	ok := false
	err := h.b.core.View(func(tx state.Tx) error {
		v, found := tx.Get(cronKeyPrefix + job)
		if !found {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, string(v))
		if err != nil {
			return err
		}
		at, ok = t, true
		return nil
	})
	if err != nil {
		h.b.log.Warn("state store: cron job's last run unreadable", "cron", job, "err", err)
		h.b.hm.storeErrors.WithLabelValues("view").Inc()
		return time.Time{}, false
	}
	return at, ok
}

// Claim claims a cron tick across the [ha] instances (lease.ClaimOnce);
// without [ha] every tick is this instance's. When NATS does not answer
// the tick is skipped: at most once, as Ran is recorded before the run.
func (h cronHistory) Claim(job string, at time.Time) bool {
	r := h.b.ha.Load()
	if r == nil || r.kv == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ok, err := lease.ClaimOnce(ctx, r.kv, job, at)
	if err != nil {
		h.b.log.Warn("cron tick not claimed (NATS did not answer); skipped", "cron", job, "at", at, "err", err)
		h.b.hm.storeErrors.WithLabelValues("update").Inc()
		return false
	}
	return ok
}

// Ran records a run.
func (h cronHistory) Ran(job string, at time.Time) {
	err := h.b.core.Update(func(tx state.Tx) error {
		return tx.Put(cronKeyPrefix+job, []byte(at.UTC().Format(time.RFC3339Nano)))
	})
	if err != nil {
		h.b.log.Warn("state store: cannot record a cron job's run", "cron", job, "err", err)
		h.b.hm.storeErrors.WithLabelValues("update").Inc()
	}
}

// unavailableError marks a failure of New that is not the config's fault:
// something it needs (NATS for [ha], the state file another process holds)
// cannot be had now. crier run exits 1 for it rather than 2.
type unavailableError struct{ err error }

func (e unavailableError) Error() string { return e.err.Error() }
func (e unavailableError) Unwrap() error { return e.err }

func unavailable(err error) error { return unavailableError{err} }

// Unavailable reports whether New failed for want of something it needs
// now (a runtime failure, exit 1) rather than because of the config (exit 2).
func Unavailable(err error) bool {
	var u unavailableError
	return errors.As(err, &u)
}
