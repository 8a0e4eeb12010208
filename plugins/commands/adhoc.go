package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"time"

	"crier/plugins"
)

// maxPayloadBytes bounds an ad-hoc request's XML.
const maxPayloadBytes = 256 << 10

// maxSessionsPerJID bounds the sessions one requester keeps open.
const maxSessionsPerJID = 16

// session is an XEP-0050 session: one requester (full JID) walking one
// command's stages.
type session struct {
	mu    sync.Mutex // one request of the session at a time
	id    string
	owner string
	node  string
	stage int
	vals  map[string]string
	last  time.Time
}

// sessions are the open XEP-0050 sessions, by id.
type sessions struct {
	mu  sync.Mutex
	max int
	m   map[string]*session
}

func newSessions(max int) *sessions { return &sessions{max: max, m: map[string]*session{}} }

// create opens a session; false when the bounds are reached even after
// dropping the expired ones.
func (s *sessions) create(owner, node string, now time.Time, timeout time.Duration) (*session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine := 0
	for id, x := range s.m {
		if now.Sub(x.last) > timeout {
			delete(s.m, id)
			continue
		}
		if x.owner == owner {
			mine++
		}
	}
	if len(s.m) >= s.max || mine >= maxSessionsPerJID {
		return nil, false
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	x := &session{id: hex.EncodeToString(b[:]), owner: owner, node: node, vals: map[string]string{}, last: now}
	s.m[x.id] = x
	return x, true
}

func (s *sessions) get(id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Errors of XEP-0050 §4.6.
func cmdError(typ, cond, app, text string) *plugins.IQError {
	e := &plugins.IQError{Type: typ, Condition: cond, Text: text}
	if app != "" {
		e.App = []byte(`<` + app + ` xmlns="` + nsCommands + `"/>`)
	}
	return e
}

// handleIQ answers an XEP-0050 <command/> request.
func (p *Plugin) handleIQ(ctx context.Context, iq plugins.IQ) ([]byte, error) {
	if p.stopped.Load() {
		return nil, cmdError("cancel", "service-unavailable", "", "commands are stopping")
	}
	if len(iq.Payload) > maxPayloadBytes {
		p.m.rejected.WithLabelValues(reasonTooBig).Inc()
		return nil, cmdError("modify", "bad-request", "bad-payload", fmt.Sprintf("the request is %d bytes; the limit is %d", len(iq.Payload), maxPayloadBytes))
	}
	var req xCommand
	if err := xml.Unmarshal(iq.Payload, &req); err != nil {
		p.m.rejected.WithLabelValues(reasonBadForm).Inc()
		return nil, cmdError("modify", "bad-request", "bad-payload", "malformed command: "+err.Error())
	}
	switch req.Action {
	case "", "execute", "next", "prev", "complete", "cancel":
	default:
		p.m.rejected.WithLabelValues(reasonBadAction).Inc()
		return nil, cmdError("modify", "bad-request", "malformed-action", fmt.Sprintf("unknown action %q", clip(req.Action, 40)))
	}
	w := p.adhocWho(iq.From)
	cmd, ok := p.lookup(req.Node)
	if !ok {
		p.m.rejected.WithLabelValues(reasonNotFound).Inc()
		return nil, cmdError("cancel", "item-not-found", "", fmt.Sprintf("no command %q", clip(req.Node, 60)))
	}
	if req.SessionID == "" {
		return p.adhocStart(ctx, w, &cmd, &req)
	}
	return p.adhocContinue(ctx, w, &cmd, &req)
}

// adhocStart begins a session (or, for a command without arguments, runs
// it at once).
func (p *Plugin) adhocStart(ctx context.Context, w who, cmd *plugins.Command, req *xCommand) ([]byte, error) {
	switch req.Action {
	case "", "execute", "complete":
	default:
		p.m.rejected.WithLabelValues(reasonBadSession).Inc()
		return nil, cmdError("modify", "bad-request", "bad-sessionid", fmt.Sprintf("%s needs a session: execute the command first", req.Action))
	}
	if !p.allowed(w, cmd) {
		p.m.rejected.WithLabelValues(reasonForbidden).Inc()
		p.m.total.WithLabelValues(cmd.Name, "adhoc", resultRefused).Inc()
		if audited(cmd) {
			p.audit.record(w, cmd.Name, nil, "forbidden", nil)
		}
		return nil, p.forbidden(w, cmd, "")
	}
	if ok, _ := p.rateAllow(w); !ok {
		p.m.total.WithLabelValues(cmd.Name, "adhoc", resultRefused).Inc()
		return nil, cmdError("wait", "resource-constraint", "", fmt.Sprintf("slow down: at most %d commands per %s", p.cfg.Rate.N, p.cfg.Rate.Per))
	}
	now := p.now()
	s, ok := p.sessions.create(w.from, cmd.Name, now, time.Duration(p.cfg.SessionTimeout))
	if !ok {
		p.m.rejected.WithLabelValues(reasonBusy).Inc()
		return nil, cmdError("wait", "resource-constraint", "", "too many open command sessions")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := stages(cmd)
	// A one-shot submission (a form with the first request) gives every
	// argument at once, as a script would.
	if req.Form != nil {
		var all []plugins.Arg
		for _, x := range st {
			all = append(all, x...)
		}
		s.stage = len(st) - 1
		return p.adhocFinish(ctx, w, cmd, s, req, all)
	}
	if len(cmd.Args) == 0 && !cmd.Destructive {
		return p.adhocRun(ctx, w, cmd, s)
	}
	return p.adhocForm(ctx, w, cmd, s, nil)
}

// adhocContinue serves a request of an open session.
func (p *Plugin) adhocContinue(ctx context.Context, w who, cmd *plugins.Command, req *xCommand) ([]byte, error) {
	s := p.sessions.get(req.SessionID)
	if s == nil {
		p.m.rejected.WithLabelValues(reasonBadSession).Inc()
		return nil, cmdError("modify", "bad-request", "bad-sessionid", "no such session")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner != w.from {
		p.m.rejected.WithLabelValues(reasonBadSession).Inc()
		p.log.Warn("ad-hoc session id used by another JID", "session", s.id, "owner", s.owner, "from", w.from)
		return nil, cmdError("modify", "bad-request", "bad-sessionid", "the session belongs to another JID")
	}
	if s.node != cmd.Name {
		p.m.rejected.WithLabelValues(reasonBadSession).Inc()
		return nil, cmdError("modify", "bad-request", "bad-sessionid", fmt.Sprintf("the session is for %q, not %q", s.node, cmd.Name))
	}
	now := p.now()
	if now.Sub(s.last) > time.Duration(p.cfg.SessionTimeout) {
		p.sessions.drop(s.id)
		p.m.rejected.WithLabelValues(reasonExpired).Inc()
		return nil, cmdError("cancel", "not-allowed", "session-expired", fmt.Sprintf("the session expired after %s idle", p.cfg.SessionTimeout))
	}
	s.last = now
	st := stages(cmd)
	last := s.stage == len(st)-1
	action := req.Action
	if action == "" || action == "execute" {
		action = "next"
		if last {
			action = "complete"
		}
	}
	switch action {
	case "cancel":
		p.sessions.drop(s.id)
		p.m.total.WithLabelValues(cmd.Name, "adhoc", resultCanceled).Inc()
		return marshal(xCommand{Node: cmd.Name, SessionID: s.id, Status: "canceled"}), nil
	case "prev":
		if s.stage == 0 {
			p.m.rejected.WithLabelValues(reasonBadAction).Inc()
			return nil, cmdError("modify", "bad-request", "bad-action", "prev: this is the first stage")
		}
		s.stage--
		return p.adhocForm(ctx, w, cmd, s, nil)
	case "next":
		if last {
			p.m.rejected.WithLabelValues(reasonBadAction).Inc()
			return nil, cmdError("modify", "bad-request", "bad-action", "next: this is the last stage; complete it")
		}
		if _, err := readForm(req.Form, st[s.stage], s.vals, false, p.cfg.MaxArgBytes); err != nil {
			return nil, p.formRefused(cmd, s, err)
		}
		s.stage++
		return p.adhocForm(ctx, w, cmd, s, nil)
	}
	// complete
	if !last {
		p.m.rejected.WithLabelValues(reasonBadAction).Inc()
		return nil, cmdError("modify", "bad-request", "bad-action", "complete: stages remain; use next")
	}
	return p.adhocFinish(ctx, w, cmd, s, req, st[s.stage])
}

// adhocFinish reads the last form, asks for confirmation when needed, and
// runs the command.
func (p *Plugin) adhocFinish(ctx context.Context, w who, cmd *plugins.Command, s *session, req *xCommand, st []plugins.Arg) ([]byte, error) {
	confirmed, err := readForm(req.Form, st, s.vals, cmd.Destructive, p.cfg.MaxArgBytes)
	if err != nil {
		return nil, p.formRefused(cmd, s, err)
	}
	if !p.allowed(w, cmd) { // rights may have changed during the session
		p.sessions.drop(s.id)
		p.m.rejected.WithLabelValues(reasonForbidden).Inc()
		return nil, p.forbidden(w, cmd, s.id)
	}
	if cmd.Destructive && !confirmed {
		prompt, err := p.preview(ctx, w, cmd, p.newCall(w, cmd, s.vals))
		if err != nil {
			p.sessions.drop(s.id)
			p.m.total.WithLabelValues(cmd.Name, "adhoc", resultError).Inc()
			return marshal(xCommand{Node: cmd.Name, SessionID: s.id, Status: "completed",
				Notes: []xNote{{Type: "error", Text: err.Error()}}}), nil
		}
		if prompt != "" {
			p.m.total.WithLabelValues(cmd.Name, "adhoc", resultPending).Inc()
			return p.adhocForm(ctx, w, cmd, s, []xNote{{Type: "warn", Text: prompt + " — check confirm to run it"}})
		}
	}
	return p.adhocRun(ctx, w, cmd, s)
}

// adhocRun runs the command with the session's values and completes the
// session.
func (p *Plugin) adhocRun(ctx context.Context, w who, cmd *plugins.Command, s *session) ([]byte, error) {
	p.sessions.drop(s.id)
	select {
	case p.sem <- struct{}{}:
	default:
		p.m.rejected.WithLabelValues(reasonBusy).Inc()
		return nil, cmdError("wait", "resource-constraint", "", "too many commands running, try again shortly")
	}
	defer func() { <-p.sem }()
	args := make(map[string]string, len(s.vals))
	for _, a := range cmd.Args {
		if v, ok := s.vals[a.Name]; ok {
			args[a.Name] = v
		} else if a.Default != "" {
			args[a.Name] = a.Default
		}
	}
	o := p.execute(ctx, w, cmd, p.newCall(w, cmd, args))
	res := xCommand{Node: cmd.Name, SessionID: s.id, Status: "completed"}
	switch {
	case o.err != nil:
		res.Notes = []xNote{{Type: "error", Text: o.err.Error()}}
	default:
		if o.reply.Text != "" {
			res.Notes = []xNote{{Type: noteType(o.reply.NoteType), Text: o.reply.Text}}
		}
		if o.reply.Table != nil {
			res.Form = tableForm(cmd.Name, o.reply.Table)
		}
		if res.Notes == nil && res.Form == nil {
			res.Notes = []xNote{{Type: "info", Text: "done"}}
		}
	}
	return marshal(res), nil
}

// adhocForm answers with the form of the session's stage; a destructive
// command's last stage shows the confirmation box and, when its arguments
// are complete, what it would do.
func (p *Plugin) adhocForm(ctx context.Context, w who, cmd *plugins.Command, s *session, notes []xNote) ([]byte, error) {
	st := stages(cmd)
	last := s.stage == len(st)-1
	confirm := cmd.Destructive && last
	if confirm && notes == nil && complete(cmd.Args, s.vals) {
		if prompt, err := p.preview(ctx, w, cmd, p.newCall(w, cmd, s.vals)); err != nil {
			notes = []xNote{{Type: "error", Text: err.Error()}}
		} else if prompt != "" {
			notes = []xNote{{Type: "warn", Text: prompt}}
		}
	}
	return marshal(xCommand{
		Node: cmd.Name, SessionID: s.id, Status: "executing",
		Actions: stageActions(s.stage, len(st)),
		Notes:   notes,
		Form:    stageForm(cmd, st[s.stage], s.vals, confirm),
	}), nil
}

// complete reports whether every required argument of a stage has a
// value.
func complete(st []plugins.Arg, vals map[string]string) bool {
	for _, a := range st {
		if a.Required && vals[a.Name] == "" {
			return false
		}
	}
	return true
}

// forbidden is the error of a command the requester may not run: the
// missing right named in the text and in an error note.
func (p *Plugin) forbidden(w who, cmd *plugins.Command, sid string) error {
	text := p.forbiddenText(w, cmd)
	e := cmdError("auth", "forbidden", "", text)
	e.Payload = marshal(xCommand{Node: cmd.Name, SessionID: sid, Status: "canceled", Notes: []xNote{{Type: "error", Text: text}}})
	return e
}

// formRefused is the error of a form that fails: bad-request with
// <bad-payload/> when malformed, not-acceptable when a value fails; both
// carry the command with an error note, and the session stays open for a
// corrected form.
func (p *Plugin) formRefused(cmd *plugins.Command, s *session, err error) error {
	var fe *formError
	if !errors.As(err, &fe) {
		fe = &formError{reason: reasonBadArgs, msg: err.Error()}
	}
	p.m.rejected.WithLabelValues(fe.reason).Inc()
	p.m.total.WithLabelValues(cmd.Name, "adhoc", resultRefused).Inc()
	note := marshal(xCommand{Node: cmd.Name, SessionID: s.id, Status: "executing", Notes: []xNote{{Type: "error", Text: fe.msg}}})
	e := cmdError("modify", "not-acceptable", "", fe.msg)
	if fe.structural {
		e = cmdError("modify", "bad-request", "bad-payload", fe.msg)
	}
	e.Payload = note
	return e
}

func marshal(v any) []byte {
	b, err := xml.Marshal(v)
	if err != nil {
		// Only plain strings go in; an error here is a bug.
		panic(fmt.Sprintf("commands: marshal: %v", err))
	}
	return b
}

// listNode answers disco on the commands node: the commands the
// requester may run.
type listNode struct{ p *Plugin }

func (n listNode) Info(_, _ string) ([][3]string, []string, bool) {
	return [][3]string{{"automation", "command-list", "Commands"}}, []string{nsCommands}, true
}

func (n listNode) Items(from, _ string) []plugins.DiscoItem {
	vis := n.p.visible(n.p.adhocWho(from))
	n.p.registerNodes(vis)
	out := make([]plugins.DiscoItem, 0, len(vis))
	for _, c := range vis {
		out = append(out, plugins.DiscoItem{Node: c.Name, Name: c.Summary})
	}
	return out
}

// cmdNode answers disco#info on one command's node.
type cmdNode struct{ p *Plugin }

func (n cmdNode) Info(_, node string) ([][3]string, []string, bool) {
	c, ok := n.p.lookup(node)
	if !ok {
		return nil, nil, false
	}
	return [][3]string{{"automation", "command-node", c.Summary}}, []string{nsCommands, nsData}, true
}

func (n cmdNode) Items(_, _ string) []plugins.DiscoItem { return nil }

// registerNodes registers the disco node of each command not registered
// yet (other plugins' commands appear when they start).
func (p *Plugin) registerNodes(list []plugins.Command) {
	if p.host == nil {
		return
	}
	p.nodesMu.Lock()
	defer p.nodesMu.Unlock()
	for _, c := range list {
		if !p.nodes[c.Name] {
			p.nodes[c.Name] = true
			p.host.HandleDisco(c.Name, cmdNode{p})
		}
	}
}
