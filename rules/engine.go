package rules

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"crier/internal/diag"
)

// Options configures an Engine.
type Options struct {
	// SenderLimit bounds the replies to one sender ([limits]
	// sender_replies): each message that produces outgoing actions takes a
	// token from its sender's bucket, and when there is none the outgoing
	// actions are dropped. It breaks loops between bots. The zero Rate is
	// no limit.
	SenderLimit Rate
	// Now is the clock (time windows, rate limits, the now template
	// function); nil means time.Now.
	Now func() time.Time
	// Logger receives template failures; nil discards them.
	Logger *slog.Logger
	// Rooms are the rooms the bot is in: a send to one of them is a
	// groupchat message unless the action says otherwise.
	Rooms []string
}

// Stats are an engine's counters since it (or the engine it adopted) began.
type Stats struct {
	Hits           map[string]uint64 // rule name -> times the rule applied
	TemplateErrors uint64            // templates that failed while rendering
	Limited        uint64            // rule applications refused by the rule's rate
	SenderLimited  uint64            // messages whose outgoing actions the sender limit dropped
	Dropped        uint64            // actions dropped for an empty target
}

// Engine evaluates compiled rules against messages. It is safe for
// concurrent use.
type Engine struct {
	rules  []*rule
	byName map[string]*rule
	now    func() time.Time
	log    *slog.Logger
	rooms  map[string]bool
	sender *limiter
	cnt    *counters

	// Candidate indexes: a rule is looked at only when its gate opens.
	always   [numEvents][]int32 // rules with no cheap gate, per event
	litAC    *automaton         // required literals of regexes, on lowered text
	litRules [][]int32          // literal id -> rules
	kwAC     *automaton         // keywords, on folded text
	kwRules  [][]int32          // keyword id -> rules gated on it
	nickIdx  map[string][]int32 // lowered literal nick -> rules
	roomIdx  map[string][]int32 // lowered literal room -> rules

	scratch sync.Pool
}

type counters struct {
	templateErrors, limited, senderLimited, dropped atomic.Uint64
}

// rule is one compiled Spec.
type rule struct {
	name    string
	hash    [32]byte
	on      uint8 // event bits
	cond    cond
	not     *cond
	limiter *limiter
	rateBy  string
	actions []action
	stop    bool
	hits    *atomic.Uint64
}

// action is one compiled action of a rule.
type action struct {
	kind                         ActionKind
	to, room, nick, text, subjct tmpl
	typ                          string
	private                      bool
}

// Events, as bits of rule.on.
const (
	evGroupchat = iota
	evChat
	evHeadline
	evNormal
	evJoin
	evLeave
	evSubject
	numEvents
)

var typeEvents = map[string]int{
	TypeGroupchat: evGroupchat, TypeChat: evChat, TypeHeadline: evHeadline, TypeNormal: evNormal,
}

var actionKinds = []ActionKind{
	ActReply, ActSend, ActHeadline, ActSubject, ActKick, ActBan, ActVoice, ActDevoice, ActInvite, ActPublish, ActLog,
}

// minGateLiteral is the length from which a regex literal is a better gate
// than a keyword list.
const minGateLiteral = 3

// Compile checks and compiles specs. It reports every problem at once, each
// at the line of the offending key; the Engine is nil when the list is not
// empty.
func Compile(specs []Spec, opts Options) (*Engine, diag.List) {
	e := &Engine{
		byName:  make(map[string]*rule, len(specs)),
		now:     opts.Now,
		log:     opts.Logger,
		rooms:   make(map[string]bool, len(opts.Rooms)),
		sender:  newLimiter(opts.SenderLimit, 0),
		cnt:     new(counters),
		nickIdx: map[string][]int32{},
		roomIdx: map[string][]int32{},
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, r := range opts.Rooms {
		e.rooms[strings.ToLower(r)] = true
	}
	funcs := TemplateFuncs(func() time.Time { return e.now() })
	c := compiler{funcs: funcs, kwIDs: map[string]int32{}}
	var errs diag.List
	names := map[string]int{}
	for i, s := range specs {
		label := s.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		at := func(key, format string, args ...any) {
			errs.Add(s.Pos.At(key, "rule %q: "+format, append([]any{label}, args...)...))
		}
		if s.Name == "" {
			at("name", "name is required")
		} else if prev, dup := names[s.Name]; dup {
			at("name", "duplicate rule name (also rule #%d)", prev+1)
		} else {
			names[s.Name] = i
		}
		r := c.rule(s, label, at)
		if r != nil {
			e.rules = append(e.rules, r)
		}
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	for _, r := range e.rules {
		e.byName[r.name] = r
	}
	e.buildIndex(&c)
	e.scratch.New = func() any { return new(scratch) }
	return e, nil
}

// compiler carries what rules share while compiling: the template
// functions and the keyword table.
type compiler struct {
	funcs    template.FuncMap
	keywords []string
	kwIDs    map[string]int32
	lits     [][]string // per rule: gate literals of its regex, or nil
	gateKW   []bool     // per rule: gated on its keywords
}

func (c *compiler) keywordIDs(words []string) ([]int32, error) {
	if len(words) == 0 {
		return nil, nil
	}
	ids := make([]int32, 0, len(words))
	for _, w := range words {
		f := strings.Join(strings.Fields(fold(w)), " ")
		if f == "" {
			return nil, fmt.Errorf("empty keyword")
		}
		id, ok := c.kwIDs[f]
		if !ok {
			id = int32(len(c.keywords))
			c.keywords = append(c.keywords, f)
			c.kwIDs[f] = id
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// specCond gathers the condition keys of a Spec.
func specCond(s Spec) Cond {
	return Cond{
		Match: s.Match, Keywords: s.Keywords, Mention: s.Mention, From: s.From, Nick: s.Nick, Room: s.Room,
		Role: s.Role, Affiliation: s.Affiliation, Days: s.Days, Hours: s.Hours, Timezone: s.Timezone,
	}
}

// cond compiles condition keys; prefix is "" or "not." for messages and
// positions.
func (c *compiler) cond(k Cond, prefix string, at func(key, format string, args ...any)) *cond {
	out := &cond{mention: k.Mention}
	key := func(name string) string { return prefix + name }
	if k.Match != "" {
		re, err := regexp.Compile(k.Match)
		if err != nil {
			at(key("match"), "invalid %smatch regex: %v", prefix, err)
		} else {
			out.re = re
		}
	}
	ids, err := c.keywordIDs(k.Keywords)
	if err != nil {
		at(key("keywords"), "%skeywords: %v", prefix, err)
	}
	out.keywords = ids
	for _, g := range []struct {
		name string
		in   []string
		dst  *globs
	}{{"from", k.From, &out.from}, {"nick", k.Nick, &out.nick}, {"room", k.Room, &out.room}} {
		if slices.Contains(g.in, "") {
			at(key(g.name), "%s%s: empty pattern", prefix, g.name)
		}
		*g.dst = newGlobs(g.in)
	}
	if out.roles, err = checkValues(k.Role, roles); err != nil {
		at(key("role"), "%srole: %v", prefix, err)
	}
	if out.affs, err = checkValues(k.Affiliation, affiliations); err != nil {
		at(key("affiliation"), "%saffiliation: %v", prefix, err)
	}
	if len(k.Days) > 0 || len(k.Hours) > 0 || k.Timezone != "" {
		w := &window{loc: time.Local}
		if w.days, err = parseDays(k.Days); err != nil {
			at(key("days"), "%sdays: %v", prefix, err)
		}
		for _, h := range k.Hours {
			span, err := parseSpan(h)
			if err != nil {
				at(key("hours"), "%s%v", prefix, err)
				continue
			}
			w.spans = append(w.spans, span)
		}
		if k.Timezone != "" {
			loc, err := time.LoadLocation(k.Timezone)
			if err != nil {
				at(key("timezone"), "%stimezone: unknown time zone %q", prefix, k.Timezone)
			} else {
				w.loc = loc
			}
			if len(k.Days) == 0 && len(k.Hours) == 0 {
				at(key("timezone"), "%stimezone is set without days or hours", prefix)
			}
		}
		out.window = w
	}
	return out
}

// rule compiles one spec; it reports problems through at and returns nil
// when there were any.
func (c *compiler) rule(s Spec, label string, at func(key, format string, args ...any)) *rule {
	failed := false
	atf := func(key, format string, args ...any) {
		failed = true
		at(key, format, args...)
	}
	r := &rule{name: s.Name, stop: s.Stop, hits: new(atomic.Uint64)}
	r.hash = specHash(s)

	on := s.On
	if len(on) == 0 {
		on = []string{string(KindMessage)}
	}
	in := s.In
	if len(in) == 0 {
		in = []string{TypeGroupchat, TypeChat}
	}
	for _, o := range on {
		switch EventKind(strings.ToLower(o)) {
		case KindMessage:
			for _, t := range in {
				ev, ok := typeEvents[strings.ToLower(t)]
				if !ok {
					atf("in", "unknown message type %q in in (want groupchat, chat, headline or normal)", t)
					continue
				}
				r.on |= 1 << ev
			}
		case KindJoin:
			r.on |= 1 << evJoin
		case KindLeave:
			r.on |= 1 << evLeave
		case KindSubject:
			r.on |= 1 << evSubject
		default:
			atf("on", "unknown trigger %q in on (want message, join, leave or subject)", o)
		}
	}
	if len(s.In) > 0 && !slices.ContainsFunc(on, func(o string) bool { return strings.EqualFold(o, string(KindMessage)) }) {
		atf("in", "in applies to message triggers, and on has none")
	}

	r.cond = *c.cond(specCond(s), "", atf)
	if s.Not != nil {
		notFailed := false
		r.not = c.cond(*s.Not, "not.", func(key, format string, args ...any) {
			if _, ok := s.Pos.Keys[key]; !ok {
				key = "not"
			}
			notFailed = true
			atf(key, format, args...)
		})
		if r.not.empty() && !notFailed {
			atf("not", "not has no condition")
		}
	}

	if s.Rate != "" {
		rate, err := ParseRate(s.Rate)
		if err != nil {
			atf("rate", "%v", err)
		}
		if s.Burst < 0 {
			atf("burst", "burst must not be negative")
		}
		r.limiter = newLimiter(rate, s.Burst)
	} else if s.Burst != 0 {
		atf("burst", "burst is set without rate")
	}
	switch strings.ToLower(s.RateBy) {
	case "", "rule":
		r.rateBy = "rule"
	case "sender", "room":
		r.rateBy = strings.ToLower(s.RateBy)
	default:
		atf("rate_by", "unknown rate_by %q (want rule, sender or room)", s.RateBy)
	}
	if s.RateBy != "" && s.Rate == "" {
		atf("rate_by", "rate_by is set without rate")
	}

	sample := sampleData(label, r.cond.re)
	tpl := func(key, name, src string) tmpl {
		t, err := parseTemplate(label+"/"+name, src, c.funcs)
		if err != nil {
			atf(key, "%s template: %v", name, err)
			return tmpl{}
		}
		if _, err := t.render(sample); err != nil {
			atf(key, "%s template: %v", name, err)
		}
		return t
	}
	if s.Reply != "" {
		r.actions = append(r.actions, action{kind: ActReply, text: tpl("reply", "reply", s.Reply), private: s.Private})
	} else if s.Private {
		atf("private", "private is set without reply")
	}
	for i, a := range s.Actions {
		key := "actions"
		name := fmt.Sprintf("actions[%d]", i)
		do := ActionKind(strings.ToLower(a.Do))
		if !slices.Contains(actionKinds, do) {
			names := make([]string, len(actionKinds))
			for i, k := range actionKinds {
				names[i] = string(k)
			}
			atf(key, "%s: unknown action %q (want %s)", name, a.Do, strings.Join(names, ", "))
			continue
		}
		act := action{kind: do, private: a.Private}
		act.to = tpl(key, name+".to", a.To)
		act.room = tpl(key, name+".room", a.Room)
		act.nick = tpl(key, name+".nick", a.Nick)
		act.text = tpl(key, name+".text", a.Text)
		act.subjct = tpl(key, name+".subject", a.Subject)
		if a.Type != "" {
			act.typ = strings.ToLower(a.Type)
			if _, ok := typeEvents[act.typ]; !ok {
				atf(key, "%s: unknown type %q (want groupchat, chat, headline or normal)", name, a.Type)
			}
			if do != ActSend {
				atf(key, "%s: type applies to send only", name)
			}
		}
		if a.Private && do != ActReply {
			atf(key, "%s: private applies to reply only", name)
		}
		switch do {
		case ActSend, ActPublish:
			if a.To == "" {
				atf(key, "%s: %s needs to", name, do)
			}
		case ActReply, ActSubject, ActLog:
			if a.Text == "" {
				atf(key, "%s: %s needs text", name, do)
			}
		}
		if a.Subject != "" && do != ActSend && do != ActHeadline && do != ActSubject {
			atf(key, "%s: subject applies to send, headline and subject only", name)
		}
		r.actions = append(r.actions, act)
	}
	if s.Reply == "" && len(s.Actions) == 0 && !s.Stop {
		atf("name", "the rule does nothing: set reply, actions or stop")
	}

	// Gate: the rarest cheap signal that must be present for the rule to
	// apply. Keywords are exact; a regex literal only rules out.
	var lits []string
	if r.cond.re != nil {
		lits = requiredLiterals(s.Match)
	}
	switch {
	case lits != nil && minLen(lits) >= minGateLiteral:
	case len(r.cond.keywords) > 0:
		lits = nil
		c.gateKW = append(c.gateKW, true)
		c.lits = append(c.lits, nil)
		return orNil(r, failed)
	}
	c.gateKW = append(c.gateKW, false)
	c.lits = append(c.lits, lits)
	return orNil(r, failed)
}

func orNil(r *rule, failed bool) *rule {
	if failed {
		return nil
	}
	return r
}

// specHash identifies a rule's definition, positions aside.
func specHash(s Spec) [32]byte {
	s.Pos = diag.Pos{}
	b, _ := json.Marshal(s)
	return sha256.Sum256(b)
}

// sampleData is what templates are run against at load time, so that a
// misspelt field or group fails then rather than on a live message.
func sampleData(rule string, re *regexp.Regexp) Data {
	d := Data{
		Rule: rule, Kind: string(KindMessage), Type: TypeGroupchat,
		From: "room@conference.example.org/alice", Room: "room@conference.example.org", Nick: "alice",
		RealJID: "alice@example.org", Role: "participant", Affiliation: "member",
		Body: "sample message body", Subject: "sample subject", BotNick: "crier",
	}
	if re != nil {
		d.Match = make([]string, re.NumSubexp()+1)
		d.Groups = map[string]string{}
		for i, n := range re.SubexpNames() {
			d.Match[i] = "sample"
			if n != "" {
				d.Groups[n] = "sample"
			}
		}
	}
	return d
}

// buildIndex fills the candidate indexes from the compiled rules.
func (e *Engine) buildIndex(c *compiler) {
	var patterns []string
	patIDs := map[string]int32{}
	e.kwRules = make([][]int32, len(c.keywords))
	for i, r := range e.rules {
		id := int32(i)
		switch {
		case c.lits[i] != nil:
			for _, l := range c.lits[i] {
				p, ok := patIDs[l]
				if !ok {
					p = int32(len(patterns))
					patterns = append(patterns, l)
					patIDs[l] = p
					e.litRules = append(e.litRules, nil)
				}
				e.litRules[p] = appendUnique(e.litRules[p], id)
			}
			continue
		case c.gateKW[i]:
			for _, k := range r.cond.keywords {
				e.kwRules[k] = appendUnique(e.kwRules[k], id)
			}
			continue
		}
		if nicks, ok := r.cond.nick.literals(); ok {
			for _, n := range nicks {
				e.nickIdx[n] = append(e.nickIdx[n], id)
			}
			continue
		}
		if rooms, ok := r.cond.room.literals(); ok {
			for _, n := range rooms {
				e.roomIdx[n] = append(e.roomIdx[n], id)
			}
			continue
		}
		for ev := 0; ev < numEvents; ev++ {
			if r.on&(1<<ev) != 0 {
				e.always[ev] = append(e.always[ev], id)
			}
		}
	}
	e.litAC = newAutomaton(patterns)
	e.kwAC = newAutomaton(c.keywords)
}

func appendUnique(s []int32, v int32) []int32 {
	if len(s) > 0 && s[len(s)-1] == v {
		return s
	}
	return append(s, v)
}

// Len returns the number of rules.
func (e *Engine) Len() int { return len(e.rules) }

// Names returns the rule names in evaluation order.
func (e *Engine) Names() []string {
	out := make([]string, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.name
	}
	return out
}

// Adopt carries over from old the state that should survive a reload: the
// rate-limit buckets and hit counters of every rule whose definition did not
// change (same name, same spec), the sender limit's buckets when its rate
// did not change, and the engine-wide counters. Call it before e is in use;
// old may keep running meanwhile, as the adopted state is shared.
func (e *Engine) Adopt(old *Engine) {
	if old == nil || e == old {
		return
	}
	for _, r := range e.rules {
		o, ok := old.byName[r.name]
		if !ok || o.hash != r.hash {
			continue
		}
		r.limiter = o.limiter
		r.hits = o.hits
	}
	if old.sender != nil && e.sender != nil && old.sender.same(e.sender.rate, 0) {
		e.sender = old.sender
	}
	e.cnt = old.cnt
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := Stats{
		Hits:           make(map[string]uint64, len(e.rules)),
		TemplateErrors: e.cnt.templateErrors.Load(),
		Limited:        e.cnt.limited.Load(),
		SenderLimited:  e.cnt.senderLimited.Load(),
		Dropped:        e.cnt.dropped.Load(),
	}
	for _, r := range e.rules {
		s.Hits[r.name] = r.hits.Load()
	}
	return s
}
