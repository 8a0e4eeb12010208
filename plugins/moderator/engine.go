package moderator

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"crier/plugins/moderator/detect"
	"crier/plugins/moderator/normalize"
)

// engine is one set of settings compiled: the detectors of a room
// override, or of every other room.
type engine struct {
	s *Settings
	// set runs every message detector and the join-wave detector; nicks
	// runs the word lists and patterns on nicks.
	set, nicks *detect.Set
	ladder     []Step
	observe    map[string]bool
	retract    map[string]bool
	goOn       map[string]bool
	exemptAny  map[string]bool
	// names are the detectors run, in order.
	names []string
}

// newEngine compiles s; files holds the words files' entries.
func newEngine(s *Settings, files map[string][]string, clock detect.Clock) (*engine, error) {
	steps := normalize.Step(normalize.All)
	if len(s.Steps) > 0 {
		var err error
		if steps, err = normalize.ParseSteps(s.Steps); err != nil {
			return nil, err
		}
	}
	n := normalize.New(steps)
	var dets, content []detect.Detector
	var lists []detect.WordList
	for _, l := range s.wordLists(files) {
		if len(l.Words) > 0 {
			lists = append(lists, l)
		}
	}
	if len(lists) > 0 {
		w, err := detect.NewWords(n, lists...)
		if err != nil {
			return nil, err
		}
		dets, content = append(dets, w), append(content, w)
	}
	e := &engine{s: s, observe: map[string]bool{}, retract: map[string]bool{}, goOn: map[string]bool{}, exemptAny: map[string]bool{}}
	if len(s.Patterns) > 0 {
		rules := make([]detect.Pattern, 0, len(s.Patterns))
		for _, p := range s.Patterns {
			rules = append(rules, detect.Pattern{Name: p.Name, Expr: p.Expr, Points: p.Points, Raw: p.Raw})
			if p.Observe {
				e.observe["regex/"+p.Name] = true
			}
		}
		pats, err := detect.NewPatterns(rules...)
		if err != nil {
			return nil, err
		}
		dets, content = append(dets, pats), append(content, pats)
	}
	dets = append(dets, s.detectors(clock)...)
	for _, d := range dets {
		e.names = append(e.names, d.Name())
	}
	e.set = detect.NewSet(n, dets...)
	e.nicks = detect.NewSet(n, content...)
	e.ladder = slices.Clone(s.Ladder)
	sort.SliceStable(e.ladder, func(i, j int) bool { return e.ladder[i].Points < e.ladder[j].Points })
	for _, o := range s.Observe {
		e.observe[o] = true
	}
	for _, r := range s.Retract {
		e.retract[r] = true
	}
	for _, g := range s.GoOn {
		e.goOn[g] = true
	}
	for _, x := range s.Exempt {
		e.exemptAny[strings.ToLower(x)] = true
	}
	return e, nil
}

// observed reports whether a verdict's rule is in observe mode.
func (e *engine) observed(v *detect.Verdict) bool {
	return e.observe[v.Detector] || e.observe[v.Detector+"/"+v.Rule]
}

// goesOn reports whether a message punished for hits goes on down the
// chain: when every finding counted is of a rule in go_on.
func (e *engine) goesOn(hits []detect.Verdict) bool {
	if len(e.goOn) == 0 || len(hits) == 0 {
		return false
	}
	for i := range hits {
		v := &hits[i]
		if !e.goOn[v.Detector] && !e.goOn[v.Detector+"/"+v.Rule] {
			return false
		}
	}
	return true
}

// exempt reports whether the occupant is exempt by affiliation, role or
// JID.
func (e *engine) exempt(role, aff, realJID string) bool {
	return e.exemptAny[role] || e.exemptAny[aff] || realJID != "" && e.exemptAny[strings.ToLower(realJID)]
}

// step returns the ladder step for points (-1: below the first).
func (e *engine) step(points float64) int {
	i := -1
	for k, s := range e.ladder {
		if points >= float64(s.Points) {
			i = k
		}
	}
	return i
}

// describe is a ladder step in words ("mute for 5m").
func (e *engine) describe(i int) string {
	if i < 0 || i >= len(e.ladder) {
		return "nothing"
	}
	s := e.ladder[i]
	if s.Action == ActMute || s.Action == ActTempban {
		return fmt.Sprintf("%s for %s", s.Action, shortDur(s.Duration.Std()))
	}
	return s.Action
}

// needs lists the rights the engine's actions need: role moderator
// (retract, mute, kick), affiliation admin (ban), owner (room changes).
func (e *engine) needs() (mod, admin, owner bool) {
	mod = len(e.retract) > 0
	for _, s := range e.ladder {
		switch s.Action {
		case ActMute, ActKick, ActRetract:
			mod = true
		case ActTempban, ActBan:
			admin = true
		}
	}
	if e.s.NickAction == ActKick {
		mod = true
	}
	if e.s.NickAction == ActBan {
		admin = true
	}
	changes := func(a string) bool { return a != ActAlert && a != RoomSlowMode }
	owner = e.s.Raid.Enabled && changes(e.s.Raid.Action) || e.s.JoinWave.Enabled && changes(e.s.JoinWave.Action)
	return mod, admin, owner
}

// rightsProblem says what the bot, with role and aff in a room, cannot
// do of what the engine may need; "" when nothing is missing.
func (e *engine) rightsProblem(role, aff string) string {
	mod, admin, owner := e.needs()
	var miss []string
	if mod && role != "moderator" {
		miss = append(miss, "not a moderator (role "+orNone(role)+"): cannot retract, mute or kick")
	}
	if admin && aff != "admin" && aff != "owner" {
		miss = append(miss, "not an admin (affiliation "+orNone(aff)+"): cannot ban")
	}
	if owner && aff != "owner" {
		miss = append(miss, "not an owner: cannot make the room moderated or members-only")
	}
	return strings.Join(miss, "; ")
}

// phrase is a detector's finding in words, for warnings.
func phrase(v *detect.Verdict) string {
	switch v.Detector {
	case "words":
		return "a blocked word"
	case "regex":
		return "a blocked phrase"
	case "links":
		return "a link"
	case "flood":
		return "flooding"
	case "repeat":
		return "repeating yourself"
	case "copypasta":
		return "copypasta"
	case "caps":
		return "shouting"
	case "symbols":
		return "symbol spam"
	case "zalgo":
		return "zalgo text"
	case "mentions":
		return "mass mentions"
	case "nick":
		return "a blocked nick"
	case "slowmode":
		return "writing faster than the room's slow mode allows"
	}
	return v.Detector
}

// roomFields are the configuration fields of the room actions.
var roomFields = map[string]string{
	RoomMembersOnly: "muc#roomconfig_membersonly",
	RoomModerated:   "muc#roomconfig_moderatedroom",
	// Slow mode is the moderator's own: no room configuration changes.
	RoomSlowMode: RoomSlowMode,
}

// rank orders actions by severity, for fallbacks and escalation.
func rank(action string) int {
	return slices.Index(ladderActions, action)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func shortDur(d time.Duration) string {
	s := d.Round(time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
