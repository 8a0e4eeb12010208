package rules

import "crier/internal/diag"

// Spec is one [[rules]] table of the config file, as decoded. The config
// loader fills Pos; Compile validates the rest and names lines from Pos.
//
// The condition keys (match, keywords, mention, from, nick, room, role,
// affiliation, days, hours, timezone) are all optional and AND-combined. The
// same keys may be written in a [rules.not] sub-table, where each key that is
// set must fail for the rule to apply.
type Spec struct {
	Name string `toml:"name"`

	// On lists the events that trigger the rule: "message" (the default),
	// "join", "leave" and "subject" (a room's subject changed).
	On []string `toml:"on"`
	// In lists the message types a "message" trigger accepts: groupchat,
	// chat, headline, normal. The default is groupchat and chat.
	In []string `toml:"in"`

	// Match is an RE2 expression on the message body (on the new subject for
	// "subject" events). Its submatches are .Match in templates and its
	// named groups are .Groups.
	Match string `toml:"match"`
	// Keywords match as whole words, ignoring case and diacritics; any one
	// of them is enough.
	Keywords []string `toml:"keywords"`
	// Mention requires the bot's nick to be written in the body as a word.
	Mention bool `toml:"mention"`
	// From lists globs on the sender's JID (its real bare JID when known,
	// else the address the message came from, full and bare).
	From []string `toml:"from"`
	// Nick lists globs on the sender's nick.
	Nick []string `toml:"nick"`
	// Room lists globs on the room's bare JID; a room condition never holds
	// for one-to-one messages.
	Room []string `toml:"room"`
	// Role lists accepted MUC roles: none, visitor, participant, moderator.
	Role []string `toml:"role"`
	// Affiliation lists accepted MUC affiliations: none, outcast, member,
	// admin, owner.
	Affiliation []string `toml:"affiliation"`
	// Days lists week days ("mon", "tuesday") and ranges ("mon-fri").
	Days []string `toml:"days"`
	// Hours lists time windows "HH:MM-HH:MM" (the end is excluded; a window
	// may wrap past midnight).
	Hours []string `toml:"hours"`
	// Timezone is the IANA zone of Days and Hours; the default is the local
	// zone of the daemon.
	Timezone string `toml:"timezone"`

	// Rate limits how often the rule applies: "N/DURATION" such as "5/1m".
	Rate string `toml:"rate"`
	// Burst is the token bucket's size; the default is N of Rate.
	Burst int `toml:"burst"`
	// RateBy chooses the bucket: "rule" (one for the rule, the default),
	// "sender" or "room".
	RateBy string `toml:"rate_by"`

	// Not holds conditions that must each fail.
	Not *Cond `toml:"not"`

	// Reply is a text/template answered in the room for groupchat, to the
	// sender otherwise (see Private).
	Reply string `toml:"reply"`
	// Private sends Reply to the occupant as a private message instead of
	// to the room.
	Private bool `toml:"private"`
	// Actions are further actions, run in order after Reply.
	Actions []ActionSpec `toml:"actions"`
	// Stop ends rule processing for the message once this rule applied.
	Stop bool `toml:"stop"`

	Pos diag.Pos `toml:"-"`
}

// Cond holds the condition keys of a [rules.not] sub-table. They mean what
// the keys of the same name mean in Spec.
type Cond struct {
	Match       string   `toml:"match"`
	Keywords    []string `toml:"keywords"`
	Mention     bool     `toml:"mention"`
	From        []string `toml:"from"`
	Nick        []string `toml:"nick"`
	Room        []string `toml:"room"`
	Role        []string `toml:"role"`
	Affiliation []string `toml:"affiliation"`
	Days        []string `toml:"days"`
	Hours       []string `toml:"hours"`
	Timezone    string   `toml:"timezone"`
}

// ActionSpec is one [[rules.actions]] table. Every string but Do and Type is
// a text/template executed against the triggering message.
type ActionSpec struct {
	// Do is the kind of action: reply, send, headline, subject, kick, ban,
	// voice, devoice, invite, publish or log.
	Do string `toml:"do"`
	// To is the target JID for send and headline, the invitee for invite
	// (default: the sender's real JID) and the NATS subject for publish.
	To string `toml:"to"`
	// Room is the room for subject, kick, ban, voice, devoice and invite;
	// the default is the message's room.
	Room string `toml:"room"`
	// Nick is the occupant that kick, ban, voice and devoice act on; the
	// default is the sender.
	Nick string `toml:"nick"`
	// Type is the message type of send: groupchat, chat, headline or
	// normal. The default is groupchat for known rooms, chat otherwise.
	Type string `toml:"type"`
	// Text is the body, the new subject, the reason, the log line or the
	// published payload.
	Text string `toml:"text"`
	// Subject is the subject of a send or headline message.
	Subject string `toml:"subject"`
	// Private makes a reply go to the occupant instead of to the room.
	Private bool `toml:"private"`
}

// CronSpec is one [[cron]] table of the config file.
type CronSpec struct {
	Name string `toml:"name"`
	// Schedule is a robfig/cron spec: five fields, an optional leading
	// seconds field, or a descriptor such as "@every 30s" or "@daily".
	Schedule string `toml:"schedule"`
	// Timezone is the IANA zone the schedule is read in (default: local).
	Timezone string `toml:"timezone"`
	To       string `toml:"to"`
	// Body is a text/template with .Name and .Time (the scheduled time).
	Body string `toml:"body"`
	// Type is the message type: groupchat, chat, headline or normal. The
	// default is groupchat for known rooms, chat otherwise.
	Type string `toml:"type"`
	// Jitter delays each run by a random duration below it ("30s").
	Jitter string `toml:"jitter"`
	// Missed says what happens to runs that fell while disconnected:
	// "skip" (the default) drops them, "once" runs the job once on
	// reconnection.
	Missed string `toml:"missed"`

	Pos diag.Pos `toml:"-"`
}
