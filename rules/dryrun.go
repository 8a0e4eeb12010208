package rules

import (
	"fmt"
	"io"
	"strings"
)

// DryRun evaluates m against e and prints, for each rule that applies, its
// name and its actions with the rendered text word for word:
//
//	rule "ping"
//	  reply to lobby@conference.example.org (groupchat): pong alice
//
// A rule held back by its rate, a failed template, a stop and the sender
// limit are printed too; "no rule matched" when nothing applies. It is what
// `crier rules test` prints. Rate limits and counters of e are used as in a
// real evaluation.
func DryRun(w io.Writer, e *Engine, m Message) {
	res := e.eval(m, true)
	if len(res.matched) == 0 {
		fmt.Fprintln(w, "no rule matched")
		return
	}
	i := 0
	for _, mt := range res.matched {
		fmt.Fprintf(w, "rule %q\n", mt.rule)
		if mt.limited {
			fmt.Fprintln(w, "  (held back by its rate)")
			continue
		}
		for ; i < len(res.actions) && res.actions[i].Rule == mt.rule; i++ {
			fmt.Fprintf(w, "  %s\n", indent(FormatAction(res.actions[i])))
		}
		for _, f := range mt.failed {
			fmt.Fprintf(w, "  (failed: %s)\n", f)
		}
		if mt.stop {
			fmt.Fprintln(w, "  stop")
		}
	}
	if res.dropped > 0 {
		fmt.Fprintf(w, "sender limit reached: %d action(s) dropped\n", res.dropped)
	}
}

// indent makes the continuation lines of a multi-line text stand under the
// action.
func indent(s string) string {
	return strings.ReplaceAll(s, "\n", "\n    ")
}

// FormatAction describes a on one line (more when its text has several),
// ending with its text as rendered.
func FormatAction(a Action) string {
	var head string
	switch a.Kind {
	case ActReply, ActSend, ActHeadline:
		head = fmt.Sprintf("%s to %s (%s)", a.Kind, a.To, a.Type)
		if a.Subject != "" {
			head += fmt.Sprintf(" [subject: %s]", a.Subject)
		}
	case ActSubject:
		head = fmt.Sprintf("subject of %s", a.Room)
	case ActKick, ActBan, ActVoice, ActDevoice:
		head = fmt.Sprintf("%s %s in %s", a.Kind, a.Nick, a.Room)
	case ActInvite:
		head = fmt.Sprintf("invite %s to %s", a.To, a.Room)
	case ActPublish:
		head = fmt.Sprintf("publish to %s", a.To)
	default:
		head = string(a.Kind)
	}
	if a.Text == "" {
		return head
	}
	return head + ": " + a.Text
}
