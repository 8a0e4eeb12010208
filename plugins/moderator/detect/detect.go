package detect

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"crier/plugins/moderator/normalize"
)

// Clock tells the time; detectors with state take one so tests can drive
// time. A nil Clock is time.Now.
type Clock func() time.Time

func (c Clock) now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// Occupants tells whether a nick is in the room now. Implementations compare
// nicks case-insensitively; NickSet is one.
type Occupants interface {
	IsOccupant(nick string) bool
}

// NickSet is a set of nicks compared case-insensitively.
type NickSet map[string]struct{}

// NewNickSet returns the set of the given nicks.
func NewNickSet(nicks ...string) NickSet {
	s := make(NickSet, len(nicks))
	for _, n := range nicks {
		s[strings.ToLower(n)] = struct{}{}
	}
	return s
}

// IsOccupant implements Occupants.
func (s NickSet) IsOccupant(nick string) bool {
	_, ok := s[strings.ToLower(nick)]
	return ok
}

// Message is one room message to check.
type Message struct {
	// Room is the room's bare JID.
	Room string
	// Sender is the stable key of the sender: the occupant-id, else the
	// real JID, else the nick. Per-sender state is kept under it.
	Sender string
	// Nick is the sender's nick in the room.
	Nick string
	// Body is the message text as received.
	Body string
	// Occupants are the room's current occupants, for mention counting and
	// to leave nicks out of the capitals ratio; nil when unknown.
	Occupants Occupants
}

// Input is what a detector sees: the message and its matching copy, made
// once for all detectors.
type Input struct {
	// Msg is the message.
	Msg *Message
	// Text is the matching copy of Msg.Body, made by the set's normaliser.
	Text *normalize.Text

	// norm is the normaliser that made Text.
	norm  *normalize.Normalizer
	sk    sketch
	hasSk bool
}

// sketch returns the near-duplicate sketch of the text, made once.
func (in *Input) sketch() *sketch {
	if !in.hasSk {
		in.sk = newSketch(in.Text)
		in.hasSk = true
	}
	return &in.sk
}

// Verdict is one detector's finding on a message or join.
type Verdict struct {
	// Detector names the detector ("words", "regex", "caps", "symbols",
	// "zalgo", "links", "mentions", "flood", "raid", "repeat", "copypasta",
	// "joinwave").
	Detector string
	// Rule names the rule inside the detector: a word list's or pattern's
	// name, or the limit that was crossed.
	Rule string
	// Points is the weight of the finding, as configured for the rule.
	Points int
	// Raw is the excerpt of the original text that matched, if any.
	Raw string
	// Norm is the same excerpt in the matching copy.
	Norm string
	// Steps are the normalisation steps that changed the excerpt: what the
	// sender did to get past a plain comparison.
	Steps normalize.Step
	// Detail says what was seen, for explanations ("entry \"free coins\"",
	// "capitals 92% of 38 letters").
	Detail string
	// Room marks a finding about the room as a whole (raid, join wave)
	// rather than about the sender.
	Room bool
}

// String renders the verdict on one line, as an explain command prints it.
func (v Verdict) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s +%d", v.Detector, v.Rule, v.Points)
	if v.Raw != "" || v.Norm != "" {
		fmt.Fprintf(&b, " %q", v.Raw)
		if v.Norm != "" && v.Norm != v.Raw {
			fmt.Fprintf(&b, " as %q", v.Norm)
		}
		if v.Steps != 0 {
			fmt.Fprintf(&b, " (%s)", v.Steps)
		}
	}
	if v.Detail != "" {
		b.WriteString(": ")
		b.WriteString(v.Detail)
	}
	if v.Room {
		b.WriteString(" [room]")
	}
	return b.String()
}

// Detector checks messages. Check appends its verdicts to out and returns
// it; it must be safe for concurrent use.
type Detector interface {
	Name() string
	Check(in *Input, out []Verdict) []Verdict
}

// Set runs detectors over messages, normalising each message once.
type Set struct {
	norm  *normalize.Normalizer
	dets  []Detector
	joins []*JoinWave
	pool  sync.Pool
}

// NewSet returns a set that normalises with n (normalize.Default when nil)
// and runs dets in order.
func NewSet(n *normalize.Normalizer, dets ...Detector) *Set {
	if n == nil {
		n = normalize.New(normalize.Default)
	}
	s := &Set{norm: n}
	for _, d := range dets {
		if j, ok := d.(*JoinWave); ok {
			s.joins = append(s.joins, j)
			continue
		}
		s.dets = append(s.dets, d)
	}
	s.pool.New = func() any { return &Input{Text: new(normalize.Text)} }
	return s
}

// Normalizer returns the set's normaliser.
func (s *Set) Normalizer() *normalize.Normalizer { return s.norm }

// Check runs every detector on m and appends the verdicts to out.
func (s *Set) Check(m *Message, out []Verdict) []Verdict {
	in := s.pool.Get().(*Input)
	in.Msg = m
	in.norm = s.norm
	in.hasSk = false
	s.norm.NormalizeInto(in.Text, m.Body)
	for _, d := range s.dets {
		out = d.Check(in, out)
	}
	in.Msg = nil
	s.pool.Put(in)
	return out
}

// Join reports a join to the join-wave detectors of the set and appends
// their verdicts to out.
func (s *Set) Join(room, sender string, out []Verdict) []Verdict {
	for _, j := range s.joins {
		if v, ok := j.Join(room, sender); ok {
			out = append(out, v)
		}
	}
	return out
}

// Every detector satisfies Detector.
var (
	_ Detector = (*Words)(nil)
	_ Detector = (*Patterns)(nil)
	_ Detector = (*Caps)(nil)
	_ Detector = (*Symbols)(nil)
	_ Detector = (*Zalgo)(nil)
	_ Detector = (*Links)(nil)
	_ Detector = (*Mentions)(nil)
	_ Detector = (*Flood)(nil)
	_ Detector = (*Raid)(nil)
	_ Detector = (*Repeat)(nil)
	_ Detector = (*Copypasta)(nil)
	_ Detector = (*JoinWave)(nil)
)
