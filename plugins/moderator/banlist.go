package moderator

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"crier/internal/state"
	"crier/plugins"
)

// The shared ban list ([moderator.banlist]). A ban the moderator makes in
// one room (the ladder's ban step, the ban command; tempbans with
// tempbans = true) becomes an entry of the list, with the case that put
// it there; every watched room where crier is an admin or owner applies
// each entry (a ban, a case of its own), and an occupant on the list who
// joins a room that has not applied it yet is banned at once. Removing an
// entry (unban, revert of its case) lifts the bans it made everywhere.
//
// Without a bucket the list lives in the moderator's own namespace. With
// one it lives in a NATS JetStream KV bucket (Host.SharedState) that every
// crier instance naming the bucket reads every poll: an entry one adds,
// the others apply; one removes, the others lift. What each instance
// applied, and in which rooms, stays in its own namespace ("applied|"),
// so that a restart lifts the right bans when an entry went away
// meanwhile.

// listEntry is one entry of the ban list.
type listEntry struct {
	JID    string `json:"jid"`
	Reason string `json:"reason,omitempty"`
	// Case and Room are the case that put the entry there and its room;
	// Origin is the bot JID of the instance that made it.
	Case   int64     `json:"case"`
	Room   string    `json:"room"`
	Origin string    `json:"origin"`
	By     string    `json:"by"`
	Time   time.Time `json:"time"`
	// Expires is when a tempban's entry ends (zero: a ban).
	Expires time.Time `json:"expires,omitzero"`
}

// applied is where this instance applied an entry: room to the end of the
// ban there (zero: none), as kept under "applied|JID".
type applied map[string]time.Time

// banList is the list and what this instance applied of it.
type banList struct {
	ns     state.Namespace // the list: p.ns or the shared bucket's
	shared bool
	poll   time.Duration
	kick   chan struct{} // asks the loop to sync now
	// opMu keeps a sync apart from adding and removing entries: a sync
	// that read the list before an entry was added must not find the ban
	// already applied and take it for one whose entry went away.
	opMu sync.Mutex

	mu      sync.Mutex
	entries map[string]listEntry // by lower-case JID, as last read
	applied map[string]applied   // by lower-case JID
	// standby is set while this instance does not speak ([ha]): it then
	// applies nothing, and reads what was applied again once it leads,
	// since the leader kept that in the namespace they share.
	standby bool
	// failed holds when a ban of the list failed in a room (room|JID):
	// it is not asked again for listRetry, so that a server that refuses
	// is not asked, and alerted about, at every poll.
	failed map[string]time.Time
}

// listRetry is how long a ban the server refused is not asked again.
const listRetry = 10 * time.Minute

// maxApplyPerSync bounds the bans one sync asks for, so that a room
// joined with a long list does not fill the outbox; the rest come at the
// next polls.
const maxApplyPerSync = 50

func listKey(j string) string    { return "list|" + safeKey(strings.ToLower(j)) }
func appliedKey(j string) string { return "applied|" + safeKey(strings.ToLower(j)) }

// startBanList opens the list (the shared bucket when configured) and
// starts the loop that applies it.
func (p *Plugin) startBanList() error {
	bl := p.cfg.BanList
	if !bl.Enabled {
		return nil
	}
	l := &banList{ns: p.ns, poll: bl.Poll.Std(), kick: make(chan struct{}, 1), entries: map[string]listEntry{}, applied: map[string]applied{}, failed: map[string]time.Time{}}
	if bl.Bucket != "" {
		ns, err := p.host.SharedState(bl.Bucket)
		if err != nil {
			return fmt.Errorf("banlist.bucket %s: %w", bl.Bucket, err)
		}
		// Entries of tempbans expire in the bucket; each instance lifts
		// its own bans by its own timers, so the bucket's expiries call
		// nobody.
		ns.OnExpire(nil)
		l.ns, l.shared = ns, true
	}
	p.list = l
	if err := p.loadApplied(); err != nil {
		p.list = nil
		return err
	}
	p.wg.Add(1)
	go p.listLoop()
	return nil
}

// loadApplied reads what this instance (or, with [ha], the leader)
// applied of the list.
func (p *Plugin) loadApplied() error {
	l := p.list
	rooms := map[string]applied{}
	err := p.ns.View(func(tx state.Tx) error {
		return tx.ForEach("applied|", func(_ string, v []byte) error {
			var rec struct {
				JID   string  `json:"jid"`
				Rooms applied `json:"rooms"`
			}
			if json.Unmarshal(v, &rec) == nil && rec.JID != "" {
				rooms[strings.ToLower(rec.JID)] = rec.Rooms
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.applied = rooms
	l.mu.Unlock()
	return nil
}

// listLoop syncs the list at start, on request and every poll.
func (p *Plugin) listLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.list.poll)
	defer t.Stop()
	for {
		p.syncList()
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.list.kick:
		}
	}
}

// kickList asks for a sync without waiting.
func (p *Plugin) kickList() {
	if p.list == nil {
		return
	}
	select {
	case p.list.kick <- struct{}{}:
	default:
	}
}

// listed returns the entry of a JID, as last read.
func (p *Plugin) listed(j string) (listEntry, bool) {
	if p.list == nil || j == "" {
		return listEntry{}, false
	}
	p.list.mu.Lock()
	defer p.list.mu.Unlock()
	e, ok := p.list.entries[strings.ToLower(j)]
	return e, ok
}

// addToList puts a ban on the list; room is where it was made already.
// It runs on a goroutine of its own: with a bucket it waits for NATS.
func (p *Plugin) addToList(c *Case, expires time.Time) {
	if p.list == nil || c.JID == "" || !expires.IsZero() && !p.cfg.BanList.Tempbans {
		return
	}
	en := listEntry{JID: strings.ToLower(c.JID), Reason: c.Reason, Case: c.ID, Room: c.Room, Origin: p.core.BotJID, By: c.By, Time: c.Time, Expires: expires}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.list.opMu.Lock()
		defer p.list.opMu.Unlock()
		p.markApplied(en.JID, c.Room, expires)
		b, _ := json.Marshal(en)
		err := p.list.ns.Update(func(tx state.Tx) error {
			if old, ok := tx.Get(listKey(en.JID)); ok {
				var o listEntry
				// A permanent entry is not shortened by a tempban.
				if json.Unmarshal(old, &o) == nil && o.Expires.IsZero() && !en.Expires.IsZero() {
					return nil
				}
			}
			if en.Expires.IsZero() {
				return tx.Put(listKey(en.JID), b)
			}
			return tx.PutExpiring(listKey(en.JID), b, en.Expires)
		})
		if err != nil {
			// The ban stays where it was made, as a ban of that room's.
			p.unmarkApplied(en.JID, c.Room)
			p.failed("banlist", c.Room, c.JID, fmt.Errorf("%w: %w", errStore, err))
			p.alert(c.Room, fmt.Sprintf("moderator: %s was not put on the ban list: %v [case %d]", c.JID, err, c.ID))
			return
		}
		p.list.mu.Lock()
		if _, ok := p.list.entries[en.JID]; !ok {
			p.list.entries[en.JID] = en
		}
		p.list.mu.Unlock()
		p.log.Info("ban list: entry added", "jid", en.JID, "case", c.ID, "room", c.Room, "shared", p.list.shared)
		p.kickList()
	}()
}

// removeFromList takes a JID off the list, reporting whether it was on
// it; the bans it made are lifted at the next sync, except in room
// (lifted by the caller already).
func (p *Plugin) removeFromList(j, room string) (bool, error) {
	if p.list == nil {
		return false, nil
	}
	j = strings.ToLower(j)
	p.list.opMu.Lock()
	defer p.list.opMu.Unlock()
	found := false
	err := p.list.ns.Update(func(tx state.Tx) error {
		_, found = tx.Get(listKey(j))
		if !found {
			return nil
		}
		return tx.Delete(listKey(j))
	})
	if err != nil {
		return false, fmt.Errorf("moderator: ban list: %w", err)
	}
	if found && room != "" {
		p.unmarkApplied(j, room)
	}
	p.list.mu.Lock()
	delete(p.list.entries, j)
	p.list.mu.Unlock()
	p.kickList()
	return found, nil
}

// markApplied records that this instance banned j in room (until until).
func (p *Plugin) markApplied(j, room string, until time.Time) {
	j = strings.ToLower(j)
	p.list.mu.Lock()
	a := p.list.applied[j]
	if a == nil {
		a = applied{}
		p.list.applied[j] = a
	}
	a[room] = until
	rec := p.appliedRecord(j, a)
	p.list.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.Put(appliedKey(j), rec) })
}

// unmarkApplied forgets that this instance banned j in room.
func (p *Plugin) unmarkApplied(j, room string) {
	if p.list == nil {
		return
	}
	j = strings.ToLower(j)
	p.list.mu.Lock()
	a := p.list.applied[j]
	delete(a, room)
	if len(a) == 0 {
		delete(p.list.applied, j)
		p.list.mu.Unlock()
		p.write(func(tx state.Tx) error { return tx.Delete(appliedKey(j)) })
		return
	}
	rec := p.appliedRecord(j, a)
	p.list.mu.Unlock()
	p.write(func(tx state.Tx) error { return tx.Put(appliedKey(j), rec) })
}

// appliedRecord encodes what was applied of j; list.mu is held.
func (p *Plugin) appliedRecord(j string, a applied) []byte {
	b, _ := json.Marshal(struct {
		JID   string  `json:"jid"`
		Rooms applied `json:"rooms"`
	}{j, a})
	return b
}

// errStore marks a failure of the state store.
var errStore = errors.New("moderator: state store")

// syncList reads the list, bans listed JIDs in watched rooms that have
// not applied them and lifts the bans of entries that went away.
func (p *Plugin) syncList() {
	l := p.list
	l.opMu.Lock()
	defer l.opMu.Unlock()
	if !p.host.Speaking() {
		l.standby = true
		return
	}
	if l.standby {
		l.standby = false
		if err := p.loadApplied(); err != nil {
			p.met.failures.WithLabelValues("banlist", "store").Inc()
			p.log.Warn("ban list: what was applied is unreadable", "err", err)
			l.standby = true
			return
		}
	}
	now := p.now()
	entries := map[string]listEntry{}
	err := l.ns.View(func(tx state.Tx) error {
		return tx.ForEach("list|", func(_ string, v []byte) error {
			var en listEntry
			if json.Unmarshal(v, &en) == nil && en.JID != "" {
				entries[strings.ToLower(en.JID)] = en
			}
			return nil
		})
	})
	if err != nil {
		p.met.failures.WithLabelValues("banlist", "store").Inc()
		p.log.Warn("ban list unreadable", "err", err)
		return
	}
	l.mu.Lock()
	l.entries = entries
	p.met.listEntries.Set(float64(len(entries)))
	type job struct {
		en    listEntry
		room  string
		unban bool
		until time.Time
	}
	var jobs []job
	rooms := p.bannableRooms()
	for j, en := range entries {
		if !en.Expires.IsZero() && !now.Before(en.Expires) {
			continue
		}
		for _, r := range rooms {
			if at, ok := l.failed[r+"|"+j]; ok && now.Sub(at) < listRetry {
				continue
			}
			if _, ok := l.applied[j][r]; !ok && len(jobs) < maxApplyPerSync {
				jobs = append(jobs, job{en: en, room: r})
			}
		}
	}
	for j, a := range l.applied {
		if _, ok := entries[j]; ok {
			continue
		}
		for r, until := range a {
			if !until.IsZero() && !now.Before(until) {
				continue // a tempban that ended: its own timer lifts it
			}
			jobs = append(jobs, job{en: listEntry{JID: j}, room: r, unban: true, until: until})
		}
	}
	l.mu.Unlock()
	slices.SortFunc(jobs, func(a, b job) int { return strings.Compare(a.room+a.en.JID, b.room+b.en.JID) })
	for _, jb := range jobs {
		if jb.unban {
			p.listUnban(jb.en.JID, jb.room)
		} else {
			p.listBan(jb.en, jb.room, now)
		}
	}
	// Records of tempbans that ended are dropped.
	l.mu.Lock()
	var stale [][2]string
	for j, a := range l.applied {
		if _, ok := entries[j]; ok {
			continue
		}
		for r, until := range a {
			if !until.IsZero() && !now.Before(until) {
				stale = append(stale, [2]string{j, r})
			}
		}
	}
	l.mu.Unlock()
	for _, s := range stale {
		p.unmarkApplied(s[0], s[1])
	}
}

// bannableRooms are the watched, joined rooms where crier may ban.
func (p *Plugin) bannableRooms() []string {
	var out []string
	for _, r := range p.host.Rooms() {
		if p.watches(r.JID) && r.State == "joined" && (r.Affiliation == "admin" || r.Affiliation == "owner") {
			out = append(out, r.JID)
		}
	}
	return out
}

// listBan applies an entry in a room: a ban, a case, and for a tempban's
// entry a timer of this instance's that lifts it.
func (p *Plugin) listBan(en listEntry, room string, now time.Time) {
	c := &Case{ID: p.nextID(), Time: now, Room: room, JID: en.JID, Target: identity("", en.JID, ""), Action: ActBan,
		Detector: "banlist", By: "banlist", Expires: en.Expires, Result: "sent",
		Reason: fmt.Sprintf("ban list: case %d in %s (%s)", en.Case, en.Room, orNone(en.Reason))}
	if en.Origin != "" && en.Origin != p.core.BotJID {
		c.Reason = fmt.Sprintf("ban list: case %d of %s in %s (%s)", en.Case, en.Origin, en.Room, orNone(en.Reason))
	}
	if !en.Expires.IsZero() {
		c.Action = ActTempban
	}
	p.markApplied(en.JID, room, en.Expires)
	p.saveCase(c)
	if !en.Expires.IsZero() {
		b, _ := json.Marshal(pending{Kind: "unban", Room: room, JID: en.JID, Case: c.ID})
		p.write(func(tx state.Tx) error { return tx.PutExpiring(banKey(room, en.JID), b, en.Expires) })
	}
	p.log.Info("ban list: applying", "jid", en.JID, "room", room, "case", c.ID, "from_case", en.Case)
	p.doThen(c, plugins.Action{Kind: plugins.ActBan, Room: room, JID: en.JID, Reason: reasonText(c)}, func() {
		// Refused or failed: tried again after listRetry.
		p.list.mu.Lock()
		p.list.failed[room+"|"+en.JID] = p.now()
		p.list.mu.Unlock()
		p.unmarkApplied(en.JID, room)
		p.write(func(tx state.Tx) error { return tx.Delete(banKey(room, en.JID)) })
	}, func() { p.noteBan(room, en.JID, en.Expires) })
}

// listUnban lifts a ban the list made, its entry gone.
func (p *Plugin) listUnban(j, room string) {
	c := &Case{ID: p.nextID(), Time: p.now(), Room: room, JID: j, Target: identity("", j, ""), Action: "unban",
		Detector: "banlist", By: "banlist", Reason: "ban list: entry removed", Result: "sent"}
	p.unmarkApplied(j, room)
	p.forgetBan(room, j)
	p.write(func(tx state.Tx) error { return tx.Delete(banKey(room, j)) })
	p.saveCase(c)
	p.log.Info("ban list: lifting", "jid", j, "room", room, "case", c.ID)
	p.do(c, plugins.Action{Kind: plugins.ActUnban, Room: room, JID: j, Reason: reasonText(c)}, nil)
}

// listJoin bans at once an occupant on the list who joins a room that
// has not applied the entry (the sync would, at the next poll).
func (p *Plugin) listJoin(room, realJID string) {
	en, ok := p.listed(realJID)
	if !ok || !en.Expires.IsZero() && !p.now().Before(en.Expires) {
		return
	}
	p.list.mu.Lock()
	_, done := p.list.applied[strings.ToLower(realJID)][room]
	p.list.mu.Unlock()
	if !done {
		p.kickList()
	}
}

// listEntries returns the entries as last read, by JID.
func (p *Plugin) listEntries() []listEntry {
	if p.list == nil {
		return nil
	}
	p.list.mu.Lock()
	defer p.list.mu.Unlock()
	out := make([]listEntry, 0, len(p.list.entries))
	for _, en := range p.list.entries {
		out = append(out, en)
	}
	slices.SortFunc(out, func(a, b listEntry) int { return strings.Compare(a.JID, b.JID) })
	return out
}
