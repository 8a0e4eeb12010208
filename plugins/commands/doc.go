// Package commands is the commands plugin: every command is defined once
// (a plugins.Command with typed arguments) and served three ways — as a
// chat command (prefix + name, in rooms and one-to-one), as an XEP-0050
// ad-hoc command node with a data form generated from its arguments, and
// as its line in the generated help, with an example that runs as a test.
//
// It sits in the message chain ([bot] chain): a message naming a known
// command runs it on a goroutine of its own and stops the chain; anything
// else goes on to the rules. After the chain, an unknown "!word" gets one
// short hint (Fallback). Commands of other plugins come from
// Host.Commands and get the same three surfaces.
//
// Rights are levels (plugins.Level): [commands] admins are owners, grants
// made with `acl` are bot-wide levels kept in the state store, and a
// room's moderators, owners, admins and members hold room-scoped levels in
// that room for commands that are not Global. Destructive commands ask for
// confirmation (`!confirm` in chat, a confirm box in the form); admin
// commands are audited to the log, the store ("audit/..." keys, the last
// 1000) and, when a publisher runs, the NATS subject crier.audit.
//
//	[commands]
//	prefix = "!"
//	admins = ["admin@example.org"]
//
// See README.md for the keys, the commands and the metrics.
package commands
