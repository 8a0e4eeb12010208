// Package rules is crier's rule language: it turns a message (or a room
// event) into the actions the bot should take, and runs [[cron]] jobs. It is
// pure: no network, no XMPP types, safe for concurrent use.
//
// A rule has a trigger (messages of some types, occupant joins and leaves,
// subject changes), optional AND-combined conditions (body regex, keywords,
// mention of the bot, sender and nick globs, room glob, MUC role and
// affiliation, time window, a rate per rule, sender or room, and a not-table
// excluding any of them), and actions (reply, send, headline, subject,
// kick, ban, voice, devoice, invite, publish, log), optionally ending
// evaluation with stop. Templates are text/template with upper, lower,
// truncate, join, now and default; they are checked at load time against a
// sample message, and a template failing at run time drops only its action.
//
// The engine never reacts to the bot itself (its JID, or its nick in a
// room) nor to delayed (history) messages, and Options.SenderLimit bounds
// how often one sender gets answers, which breaks loops between bots.
//
// Matching cost does not grow with the number of rules: each rule has a gate
// (a literal its regex requires, or its keywords, found for all rules at
// once by Aho-Corasick automata; or an exact nick or room), and only the
// rules whose gate opens are examined, cheap conditions first.
//
// Usage sketch:
//
//	eng, errs := rules.Compile(cfg.Rules, rules.Options{SenderLimit: cfg.Limits.SenderReplies, Logger: log})
//	if len(errs) > 0 {
//		return errs.Err() // every problem, FILE:LINE: message
//	}
//	eng.Adopt(oldEngine) // on reload: keep rate-limit state of unchanged rules
//	for _, a := range eng.Evaluate(rules.Message{Type: "groupchat", From: from, Room: room, Nick: nick, Body: body, BotNick: me}) {
//		outbox.Do(a)
//	}
//
//	jobs, errs := rules.CompileCron(cfg.Cron)
//	sched := rules.NewScheduler(jobs, outbox.Do, rules.WithRooms(roomJIDs...))
//	sched.Start()
//	defer sched.Stop()
//	// sched.Disconnected() / sched.Reconnected() follow the session.
//
// `crier rules test` prints what DryRun prints.
package rules
