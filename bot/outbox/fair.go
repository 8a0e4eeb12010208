package outbox

import "time"

// fairQueue holds the items of one priority, one lane per target, and
// serves the lanes round-robin: each turn takes the head of the next lane
// whose head is ready. A target with a thousand items waiting (a room a
// backlog drains into) therefore delays an item for another target by at
// most one of its own per turn, and a fan-out to a thousand recipients
// takes one turn per recipient like anything else. Within a lane, items
// keep their order.
//
// A lane's key is its room for groupchat items (Item.Room), so that a
// closed room gate takes the whole lane, and its address otherwise.
type fairQueue struct {
	lanes map[laneKey]*lane
	cur   *lane // the next lane to serve; nil when empty
	n     int   // items in all lanes
}

type laneKey struct {
	room bool
	addr string
}

// lane is one target's items in a circular, doubly linked ring of the
// lanes that have items. A lane leaves the ring (and the map) when it
// empties.
type lane struct {
	key        laneKey
	items      []*Item
	prev, next *lane
}

func keyOf(it *Item) laneKey {
	if it.Room != "" {
		return laneKey{room: true, addr: it.Room}
	}
	return laneKey{addr: it.To}
}

// laneFor returns the lane of k, making it (as the last of the turn) when
// there is none.
func (q *fairQueue) laneFor(k laneKey) *lane {
	if l := q.lanes[k]; l != nil {
		return l
	}
	if q.lanes == nil {
		q.lanes = make(map[laneKey]*lane)
	}
	l := &lane{key: k}
	q.lanes[k] = l
	if q.cur == nil {
		l.prev, l.next = l, l
		q.cur = l
	} else {
		// Just before the current lane: served last in this turn.
		l.prev, l.next = q.cur.prev, q.cur
		q.cur.prev.next = l
		q.cur.prev = l
	}
	return l
}

func (q *fairQueue) remove(l *lane) {
	delete(q.lanes, l.key)
	if l.next == l {
		q.cur = nil
	} else {
		l.prev.next, l.next.prev = l.next, l.prev
		if q.cur == l {
			q.cur = l.next
		}
	}
	l.prev, l.next = nil, nil
}

// push adds it at the end of its lane.
func (q *fairQueue) push(it *Item) {
	l := q.laneFor(keyOf(it))
	l.items = append(l.items, it)
	q.n++
}

// pushFront puts items back at the head of their lanes, in their order.
func (q *fairQueue) pushFront(items []*Item) {
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		l := q.laneFor(keyOf(it))
		l.items = append(l.items, nil)
		copy(l.items[1:], l.items)
		l.items[0] = it
		q.n++
	}
}

// insertByQueued puts it into its lane after the items queued before it
// and ahead of those queued after.
func (q *fairQueue) insertByQueued(it *Item) {
	l := q.laneFor(keyOf(it))
	pos := len(l.items)
	for i, c := range l.items {
		if c.queued.After(it.queued) {
			pos = i
			break
		}
	}
	l.items = append(l.items, nil)
	copy(l.items[pos+1:], l.items[pos:])
	l.items[pos] = it
	q.n++
}

// take removes and returns the head of the next lane (in turn) whose head
// is ready at now by ready; with none ready it returns how long until one
// is (-1: never by itself).
func (q *fairQueue) take(now time.Time, ready func(*Item) time.Time) (*Item, time.Duration) {
	wait := time.Duration(-1)
	l := q.cur
	for range len(q.lanes) {
		it := l.items[0]
		if at := ready(it); at.After(now) {
			if d := at.Sub(now); wait < 0 || d < wait {
				wait = d
			}
			l = l.next
			continue
		}
		l.items[0] = nil
		l.items = l.items[1:]
		q.n--
		q.cur = l.next
		if len(l.items) == 0 {
			q.remove(l)
		}
		return it, 0
	}
	return nil, wait
}

// takeRoom removes and returns every item of room's lane, in order.
func (q *fairQueue) takeRoom(room string) []*Item {
	l := q.lanes[laneKey{room: true, addr: room}]
	if l == nil {
		return nil
	}
	q.remove(l)
	q.n -= len(l.items)
	return l.items
}

// rooms calls f with the room of each room lane.
func (q *fairQueue) rooms(f func(room string)) {
	var rs []string
	for k := range q.lanes {
		if k.room {
			rs = append(rs, k.addr)
		}
	}
	for _, r := range rs {
		f(r)
	}
}
