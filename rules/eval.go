package rules

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// scratch is per-evaluation memory, pooled so that a quiet message (the
// usual case: no rule applies) allocates nothing.
type scratch struct {
	cands   []int32
	kwFound []int32
}

// result is what one evaluation produced.
type result struct {
	actions []Action
	applied int       // rules that applied, or would have but for a limit
	matched []matched // only when tracing
	dropped int       // outgoing actions the sender limit dropped
}

// matched records one rule that applied (or would have but for its rate).
type matched struct {
	rule    string
	limited bool
	stop    bool
	failed  []string // template failures
}

// Evaluate returns the actions the rules produce for m, in rule order. It
// never reacts to the bot itself, to delayed (history) messages, or to its
// own nick in a room.
func (e *Engine) Evaluate(m Message) []Action {
	return e.eval(m, false).actions
}

// EvaluateMatched is Evaluate that also reports whether any rule applied
// to m, even when it produced no action (a template that failed, a rate
// limit, the loop breaker): the message was for the rules.
func (e *Engine) EvaluateMatched(m Message) ([]Action, bool) {
	res := e.eval(m, false)
	return res.actions, res.applied > 0
}

// normalize fills the defaults of m and reports whether it may trigger
// anything at all.
func normalize(m *Message) (event int, ok bool) {
	if m.Delayed {
		return 0, false
	}
	if m.Kind == "" {
		m.Kind = KindMessage
	}
	switch m.Kind {
	case KindMessage:
		if m.Type == "" {
			m.Type = TypeChat
			if m.Room != "" {
				m.Type = TypeGroupchat
			}
		}
		ev, known := typeEvents[m.Type]
		if !known {
			return 0, false
		}
		event = ev
		if m.Type == TypeGroupchat && m.Room == "" {
			m.Room = bare(m.From)
		}
	case KindJoin:
		event = evJoin
	case KindLeave:
		event = evLeave
	case KindSubject:
		event = evSubject
	default:
		return 0, false
	}
	if m.Nick == "" {
		if m.Room != "" {
			m.Nick = resource(m.From)
		} else {
			m.Nick = localpart(m.From)
		}
	}
	// Never the bot itself: by its JID, or by its nick in a room.
	if m.BotJID != "" && (strings.EqualFold(bare(m.From), m.BotJID) || strings.EqualFold(bare(m.RealJID), m.BotJID)) {
		return 0, false
	}
	if m.Room != "" && m.BotNick != "" && strings.EqualFold(m.Nick, m.BotNick) {
		return 0, false
	}
	// A groupchat message without a nick comes from the room itself.
	if m.Kind == KindMessage && m.Type == TypeGroupchat && m.Nick == "" {
		return 0, false
	}
	return event, true
}

// senderKey identifies the sender for limits: the real JID when known, the
// occupant in a room, else the bare JID (so that changing resource does not
// escape a limit).
func senderKey(m *Message) string {
	switch {
	case m.RealJID != "":
		return strings.ToLower(bare(m.RealJID))
	case m.Room != "":
		return strings.ToLower(m.Room) + "/" + m.Nick
	}
	return strings.ToLower(bare(m.From))
}

func (e *Engine) eval(m Message, trace bool) result {
	var res result
	event, ok := normalize(&m)
	if !ok {
		return res
	}
	now := e.now()
	sc := e.scratch.Get().(*scratch)
	defer e.scratch.Put(sc)

	x := evalCtx{m: &m, now: now, text: m.Body, sender: senderKey(&m)}
	if m.Kind == KindSubject && x.text == "" {
		x.text = m.Subject
	}

	// Candidates: rules whose gate is open for this message.
	cands := append(sc.cands[:0], e.always[event]...)
	if x.text != "" {
		if !e.litAC.empty() {
			e.litAC.scan(lowerText(x.text), func(id int32, _, _ int) {
				cands = append(cands, e.litRules[id]...)
			})
		}
		x.folded = fold(x.text)
		found := sc.kwFound[:0]
		e.kwAC.scan(x.folded, func(id int32, start, end int) {
			if !slices.Contains(found, id) && atWordBoundary(x.folded, start, end) {
				found = append(found, id)
			}
		})
		x.kwFound = found
		for _, id := range found {
			cands = append(cands, e.kwRules[id]...)
		}
		sc.kwFound = found
	}
	if len(e.nickIdx) > 0 && m.Nick != "" {
		cands = append(cands, e.nickIdx[strings.ToLower(m.Nick)]...)
	}
	if len(e.roomIdx) > 0 && m.Room != "" {
		cands = append(cands, e.roomIdx[strings.ToLower(m.Room)]...)
	}
	slices.Sort(cands)
	cands = slices.Compact(cands)
	sc.cands = cands

	for _, i := range cands {
		r := e.rules[i]
		if r.on&(1<<event) == 0 {
			continue
		}
		ok, sub := r.cond.holds(&x)
		if !ok || (r.not != nil && r.not.anyHolds(&x)) {
			continue
		}
		res.applied++
		if r.limiter != nil && !r.limiter.allow(r.limitKey(&x), now) {
			e.cnt.limited.Add(1)
			if trace {
				res.matched = append(res.matched, matched{rule: r.name, limited: true})
			}
			continue
		}
		r.hits.Add(1)
		mt := matched{rule: r.name, stop: r.stop}
		data := r.data(&m, sub)
		for _, a := range r.actions {
			act, err := e.render(r, a, &m, &data)
			if err != nil {
				e.log.Warn("rule action failed", "rule", r.name, "action", a.kind, "err", err)
				mt.failed = append(mt.failed, fmt.Sprintf("%s: %v", a.kind, err))
				continue
			}
			res.actions = append(res.actions, act)
		}
		if trace {
			res.matched = append(res.matched, mt)
		}
		if r.stop {
			break
		}
	}

	if e.sender != nil && slices.ContainsFunc(res.actions, Action.Outgoing) && !e.senderAllows(x.sender, now) {
		e.cnt.senderLimited.Add(1)
		kept := res.actions[:0]
		for _, a := range res.actions {
			if a.Outgoing() {
				res.dropped++
				continue
			}
			kept = append(kept, a)
		}
		res.actions = kept
		if len(kept) == 0 {
			res.actions = nil
		}
	}
	return res
}

// limitKey picks the rule's bucket for the message.
func (r *rule) limitKey(x *evalCtx) string {
	switch r.rateBy {
	case "sender":
		return x.sender
	case "room":
		if x.m.Room != "" {
			return strings.ToLower(x.m.Room)
		}
		return x.sender
	}
	return ""
}

// data is the template dot for a message.
func (r *rule) data(m *Message, sub []string) Data {
	d := Data{
		Rule: r.name, Kind: string(m.Kind), Type: m.Type, From: m.From, Room: m.Room, Nick: m.Nick,
		RealJID: m.RealJID, Role: m.Role, Affiliation: m.Affiliation, Body: m.Body, Subject: m.Subject,
		BotNick: m.BotNick, Match: sub,
	}
	if r.cond.re != nil {
		d.Groups = make(map[string]string, len(sub))
		for i, n := range r.cond.re.SubexpNames() {
			if n != "" && i < len(sub) {
				d.Groups[n] = sub[i]
			}
		}
	}
	return d
}

// render turns a compiled action into an Action for m.
func (e *Engine) render(r *rule, a action, m *Message, d *Data) (Action, error) {
	get := func(t tmpl, def string) (string, error) {
		if t.empty() {
			return def, nil
		}
		s, err := t.render(d)
		if err != nil {
			e.cnt.templateErrors.Add(1)
			return "", fmt.Errorf("%w: %v", ErrTemplate, err)
		}
		return s, nil
	}
	out := Action{Rule: r.name, Kind: a.kind}
	var err error
	if out.Text, err = get(a.text, ""); err != nil {
		return out, err
	}
	need := func(v, what string) error {
		if v == "" {
			e.cnt.dropped.Add(1)
			return fmt.Errorf("%w: no %s", ErrNoTarget, what)
		}
		return nil
	}
	room := func() (string, error) {
		v, err := get(a.room, m.Room)
		if err != nil {
			return "", err
		}
		return v, need(v, "room")
	}
	switch a.kind {
	case ActReply:
		switch {
		case a.private && m.Room != "" && m.Nick != "":
			out.To, out.Type = m.Room+"/"+m.Nick, TypeChat
		case m.Room != "" && (m.Type == TypeGroupchat || m.Kind != KindMessage):
			out.To, out.Type = m.Room, TypeGroupchat
		case m.Type == TypeNormal:
			out.To, out.Type = m.From, TypeNormal
		default:
			out.To, out.Type = m.From, TypeChat
		}
		return out, need(out.To, "sender")
	case ActSend, ActHeadline:
		def := ""
		if a.kind == ActHeadline {
			def = m.RealJID
			if def == "" && m.Room == "" {
				def = m.From
			}
		}
		if out.To, err = get(a.to, def); err != nil {
			return out, err
		}
		if out.Subject, err = get(a.subjct, ""); err != nil {
			return out, err
		}
		switch {
		case a.kind == ActHeadline:
			out.Type = TypeHeadline
		case a.typ != "":
			out.Type = a.typ
		case strings.EqualFold(out.To, m.Room) || e.rooms[strings.ToLower(out.To)]:
			out.Type = TypeGroupchat
		default:
			out.Type = TypeChat
		}
		return out, need(out.To, "address")
	case ActSubject:
		if out.Room, err = room(); err != nil {
			return out, err
		}
		if s, err := get(a.subjct, ""); err != nil {
			return out, err
		} else if s != "" {
			out.Text = s
		}
		out.To, out.Type, out.Subject = out.Room, TypeGroupchat, out.Text
		return out, nil
	case ActKick, ActBan, ActVoice, ActDevoice:
		if out.Room, err = room(); err != nil {
			return out, err
		}
		if out.Nick, err = get(a.nick, m.Nick); err != nil {
			return out, err
		}
		if err := need(out.Nick, "nick"); err != nil {
			return out, err
		}
		if m.BotNick != "" && strings.EqualFold(out.Nick, m.BotNick) {
			e.cnt.dropped.Add(1)
			return out, fmt.Errorf("%w: refusing to %s the bot itself", ErrNoTarget, a.kind)
		}
		out.To = out.Room
		return out, nil
	case ActInvite:
		if out.Room, err = room(); err != nil {
			return out, err
		}
		def := m.RealJID
		if def == "" && m.Room == "" {
			def = bare(m.From)
		}
		if out.To, err = get(a.to, def); err != nil {
			return out, err
		}
		return out, need(out.To, "invitee")
	case ActPublish:
		if a.text.empty() {
			out.Text = m.Body
		}
		if out.To, err = get(a.to, ""); err != nil {
			return out, err
		}
		return out, need(out.To, "subject")
	}
	return out, nil
}

// senderAllows applies the per-sender loop breaker; the first refusal of
// a run is logged, the others only counted.
func (e *Engine) senderAllows(sender string, now time.Time) bool {
	ok, first := e.sender.take(sender, now)
	if first {
		e.log.Warn("replies to this sender dropped until its limit refills (loop breaker, limits.sender_replies)",
			"sender", sender, "limit", e.sender.rate.String())
	}
	return ok
}
