package moderator

import (
	"fmt"
	"strings"

	"crier/plugins/moderator/detect"
	"crier/plugins/moderator/normalize"
)

// settingsFor returns the settings of a room: its override, or the
// [moderator] table's.
func (c *Config) settingsFor(room string) (*Settings, bool) {
	for i := range c.Room {
		if c.Room[i].JID == room {
			return &c.Room[i].Settings, true
		}
	}
	return &c.Settings, false
}

// Explain runs every detector of the room's settings on one message, as a
// moderator that has seen nothing before would, and describes each
// detector's verdict, the normalised text it saw and what the message
// would get as a first offence. Nothing is sent or stored.
func Explain(c *Config, room, nick, body string) (string, error) {
	if c.fileWords == nil {
		c.fileWords = map[string][]string{}
	}
	s, override := c.settingsFor(room)
	e, err := newEngine(s, c.fileWords, nil)
	if err != nil {
		return "", fmt.Errorf("moderator: %w", err)
	}
	var b strings.Builder
	where := "the [moderator] settings"
	if override {
		where = "its [[moderator.room]] override"
	}
	if room == "" {
		room = "(any room)"
	}
	fmt.Fprintf(&b, "room: %s, with %s\n", room, where)
	if s.DryRun {
		b.WriteString("mode: observe (dry_run): nothing would be done, only reported\n")
	}
	n := e.set.Normalizer()
	fmt.Fprintf(&b, "normalised (%s): %q\n", n.Steps(), n.String(body))
	fmt.Fprintf(&b, "pattern text (%s): %q\n", detect.PatternSteps, normalize.New(detect.PatternSteps).String(body))
	vs := e.set.Check(&detect.Message{Room: room, Sender: "explain", Nick: nick, Body: body}, nil)
	points := 0
	var hits []detect.Verdict
	for _, name := range e.names {
		found := false
		for i := range vs {
			v := &vs[i]
			if v.Detector != name {
				continue
			}
			found = true
			mode := ""
			switch {
			case v.Room:
				mode = " (room finding)"
			case e.observed(v):
				mode = " (observe: not counted)"
			default:
				points += v.Points
				hits = append(hits, *v)
			}
			fmt.Fprintf(&b, "  %-10s %s%s\n", name+":", v.String(), mode)
		}
		if !found {
			fmt.Fprintf(&b, "  %-10s -\n", name+":")
		}
	}
	if iv := s.SlowMode.Interval.Std(); iv > 0 {
		fmt.Fprintf(&b, "  %-10s one message per %s (+%d for one sooner; a first message passes)\n", "slowmode:", shortDur(iv), s.SlowMode.Points)
	}
	if nick != "" && s.NickAction != ActNone {
		nv := e.nicks.Check(&detect.Message{Room: room, Body: nick}, nil)
		if len(nv) > 0 {
			fmt.Fprintf(&b, "  %-10s %s: %s at join\n", "nick:", nv[0].String(), s.NickAction)
		} else {
			fmt.Fprintf(&b, "  %-10s -\n", "nick:")
		}
	}
	fmt.Fprintf(&b, "points: %d (threshold %d)\n", points, s.Threshold)
	if points < s.Threshold || len(hits) == 0 {
		b.WriteString("would do: nothing\n")
		return b.String(), nil
	}
	idx := e.step(float64(points))
	var what []string
	for _, v := range hits {
		if e.retract[v.Detector] {
			what = append(what, ActRetract)
			break
		}
	}
	if idx >= 0 && e.ladder[idx].Action != ActNone {
		what = append(what, e.describe(idx))
	}
	if len(what) == 0 {
		what = []string{"nothing (below the first ladder step)"}
	}
	fmt.Fprintf(&b, "would do (first offence): %s\n", strings.Join(what, " and "))
	if e.goesOn(hits) {
		b.WriteString("then the message goes on to commands and rules (go_on)\n")
	}
	return b.String(), nil
}
