package rules

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cond is a compiled set of conditions (a rule's, or its not-table's).
type cond struct {
	re       *regexp.Regexp
	keywords []int32 // ids in the engine's keyword table
	mention  bool
	from     globs
	nick     globs
	room     globs
	roles    []string
	affs     []string
	window   *window
}

// empty reports whether c has no condition at all.
func (c *cond) empty() bool {
	return c.re == nil && len(c.keywords) == 0 && !c.mention && c.from == nil && c.nick == nil &&
		c.room == nil && c.roles == nil && c.affs == nil && c.window == nil
}

// window is a time-of-week condition.
type window struct {
	days  uint8    // bit i: time.Weekday(i); 0 = every day
	spans [][2]int // minutes of the day [start, end); end < start wraps past midnight
	loc   *time.Location
}

func (w *window) holds(t time.Time) bool {
	t = t.In(w.loc)
	if w.days != 0 && w.days&(1<<uint(t.Weekday())) == 0 {
		return false
	}
	if len(w.spans) == 0 {
		return true
	}
	m := t.Hour()*60 + t.Minute()
	for _, s := range w.spans {
		if s[0] < s[1] && m >= s[0] && m < s[1] {
			return true
		}
		if s[0] > s[1] && (m >= s[0] || m < s[1]) {
			return true
		}
	}
	return false
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "sunday": time.Sunday,
	"mon": time.Monday, "monday": time.Monday,
	"tue": time.Tuesday, "tuesday": time.Tuesday,
	"wed": time.Wednesday, "wednesday": time.Wednesday,
	"thu": time.Thursday, "thursday": time.Thursday,
	"fri": time.Friday, "friday": time.Friday,
	"sat": time.Saturday, "saturday": time.Saturday,
}

// parseDays reads "mon", "monday" and ranges "mon-fri" (which may wrap,
// "fri-mon").
func parseDays(days []string) (uint8, error) {
	var mask uint8
	for _, d := range days {
		d = strings.ToLower(strings.TrimSpace(d))
		from, to, isRange := strings.Cut(d, "-")
		a, ok := dayNames[from]
		if !ok {
			return 0, fmt.Errorf("unknown day %q (want mon, tue, ... or a range such as mon-fri)", d)
		}
		b := a
		if isRange {
			if b, ok = dayNames[to]; !ok {
				return 0, fmt.Errorf("unknown day %q (want mon, tue, ... or a range such as mon-fri)", d)
			}
		}
		for w := a; ; w = (w + 1) % 7 {
			mask |= 1 << uint(w)
			if w == b {
				break
			}
		}
	}
	return mask, nil
}

// parseSpan reads "HH:MM-HH:MM".
func parseSpan(s string) ([2]int, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return [2]int{}, fmt.Errorf("hours %q: want HH:MM-HH:MM", s)
	}
	start, err1 := parseClock(a)
	end, err2 := parseClock(b)
	if err1 != nil || err2 != nil {
		return [2]int{}, fmt.Errorf("hours %q: want HH:MM-HH:MM", s)
	}
	if start == end {
		return [2]int{}, fmt.Errorf("hours %q: the window is empty", s)
	}
	return [2]int{start, end}, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return 0, fmt.Errorf("bad clock %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("bad clock %q", s)
	}
	return (hh*60 + mm) % (24 * 60), nil
}

var (
	roles        = []string{"none", "visitor", "participant", "moderator"}
	affiliations = []string{"none", "outcast", "member", "admin", "owner"}
)

// checkValues lowers values and reports the first that is not in allowed.
func checkValues(values, allowed []string) ([]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := make([]string, len(values))
	for i, v := range values {
		v = strings.ToLower(strings.TrimSpace(v))
		if !slices.Contains(allowed, v) {
			return nil, fmt.Errorf("unknown value %q (want one of %s)", v, strings.Join(allowed, ", "))
		}
		out[i] = v
	}
	return out, nil
}

// evalCtx is what one evaluation knows about its message; the costly parts
// (folded text, mention) are computed once and shared by every rule.
type evalCtx struct {
	m       *Message
	now     time.Time
	text    string // body, or subject for subject events
	folded  string
	kwFound []int32 // keyword ids present in the folded text as words
	mention int8    // 0 unknown, 1 yes, -1 no
	sender  string  // sender key for limits
}

func (x *evalCtx) mentioned() bool {
	if x.mention == 0 {
		x.mention = -1
		nick := x.m.BotNick
		if nick == "" {
			nick = localpart(x.m.BotJID)
		}
		if nick != "" && containsWord(x.folded, fold(nick)) {
			x.mention = 1
		}
	}
	return x.mention > 0
}

func (x *evalCtx) hasKeyword(ids []int32) bool {
	for _, id := range ids {
		if slices.Contains(x.kwFound, id) {
			return true
		}
	}
	return false
}

// holds reports whether every condition of c holds, checking the cheap ones
// first, and returns the regex submatches (nil without a regex).
func (c *cond) holds(x *evalCtx) (bool, []string) {
	m := x.m
	if c.roles != nil && !slices.Contains(c.roles, strings.ToLower(m.Role)) {
		return false, nil
	}
	if c.affs != nil && !slices.Contains(c.affs, strings.ToLower(m.Affiliation)) {
		return false, nil
	}
	if c.room != nil && (m.Room == "" || !c.room.any(m.Room)) {
		return false, nil
	}
	if c.nick != nil && !c.nick.any(m.Nick) {
		return false, nil
	}
	if c.from != nil && !c.from.any(m.RealJID, m.From, bare(m.From)) {
		return false, nil
	}
	if c.window != nil && !c.window.holds(x.now) {
		return false, nil
	}
	if c.mention && !x.mentioned() {
		return false, nil
	}
	if c.keywords != nil && !x.hasKeyword(c.keywords) {
		return false, nil
	}
	if c.re != nil {
		sub := c.re.FindStringSubmatch(x.text)
		if sub == nil {
			return false, nil
		}
		return true, sub
	}
	return true, nil
}

// anyHolds reports whether at least one condition of c holds: a not-table
// excludes the message when any of its keys matches.
func (c *cond) anyHolds(x *evalCtx) bool {
	m := x.m
	switch {
	case c.roles != nil && slices.Contains(c.roles, strings.ToLower(m.Role)):
		return true
	case c.affs != nil && slices.Contains(c.affs, strings.ToLower(m.Affiliation)):
		return true
	case c.room != nil && m.Room != "" && c.room.any(m.Room):
		return true
	case c.nick != nil && c.nick.any(m.Nick):
		return true
	case c.from != nil && c.from.any(m.RealJID, m.From, bare(m.From)):
		return true
	case c.window != nil && c.window.holds(x.now):
		return true
	case c.mention && x.mentioned():
		return true
	case c.keywords != nil && x.hasKeyword(c.keywords):
		return true
	case c.re != nil && c.re.MatchString(x.text):
		return true
	}
	return false
}
