// Package moderator is crier's chat moderator: a link of the message chain
// (first in the default [bot] chain, before commands and rules) that runs
// each room message through the detectors of package detect on the
// matching copy package normalize makes, turns findings into weighted
// strike points that decay, and climbs an escalation ladder: warn, retract
// (XEP-0425), mute, kick, timed ban, ban. A join wave or a raid makes the
// room members-only or moderated for a while. Timed actions end through
// expiring keys in the plugin's state namespace, so a restart does not
// forget them; every action is a case in the store and, with a subject
// set, a JSON event on NATS.
//
// Counters are keyed on the occupant's XEP-0421 occupant-id, else the real
// JID, else the nick, and follow nick changes. Owners, admins, moderators
// (configurable), listed JIDs, a temporary permit and the bot itself are
// left alone; an event whose sender cannot be identified is never acted
// on. A message the moderator acted on stops the chain.
//
// Observe mode (dry_run, the observe command, or observe on one rule)
// reports what would be done and does nothing; Explain (crier moderator
// test, the explain command) prints every detector's verdict on a text.
//
//	[moderator]
//	words  = ["freecoins", "join my server"]
//	alert  = ["mods@conference.example.org"]
//	[[moderator.ladder]]
//	points = 1
//	action = "warn"
//
// See README.md for every key and metric.
package moderator
