package plugins

import (
	"context"
	"time"
)

// Level is a right to run commands. Higher levels include the lower ones.
type Level int

// Levels, lowest first.
const (
	// Anyone may run the command.
	Anyone Level = iota
	// Member is a member (or higher affiliation) of the room the command
	// is given in, or a user granted the level.
	Member
	// Moderator is a room moderator (role) in the room the command is
	// given in, or a user granted the level.
	Moderator
	// Admin is a bot admin ([commands] admins, or granted).
	Admin
	// Owner is the highest level: every right.
	Owner
)

// String returns the level's name.
func (l Level) String() string {
	switch l {
	case Anyone:
		return "anyone"
	case Member:
		return "member"
	case Moderator:
		return "moderator"
	case Admin:
		return "admin"
	case Owner:
		return "owner"
	}
	return "unknown"
}

// ParseLevel reads a level's name.
func ParseLevel(s string) (Level, bool) {
	for l := Anyone; l <= Owner; l++ {
		if l.String() == s {
			return l, true
		}
	}
	return 0, false
}

// ArgKind is the type of a command argument: it decides the chat parser
// and the XEP-0050 form field.
type ArgKind int

// Kinds of argument.
const (
	// ArgText is one word in chat (text-single), or the rest of the line
	// when it is the last argument and Rest is set.
	ArgText ArgKind = iota
	// ArgBool is on/off, yes/no, true/false (boolean).
	ArgBool
	// ArgList is one of Options (list-single).
	ArgList
	// ArgJID is a JID (jid-single).
	ArgJID
	// ArgDuration is a Go duration such as 10m or 2h (text-single).
	ArgDuration
	// ArgInt is an integer (text-single).
	ArgInt
)

// Arg is one argument of a command.
type Arg struct {
	Name  string // the form field's var and the help's placeholder
	Label string
	Desc  string
	Kind  ArgKind
	// Required arguments must be given.
	Required bool
	// Rest makes a text argument take the rest of the chat line.
	// Arguments declared after it are written name=value in chat, before
	// the text starts ("!say type=headline TO TEXT").
	Rest bool
	// Options are the choices of an ArgList.
	Options []string
	// Default is the value when not given.
	Default string
	// Max bounds the argument's length in bytes (0: [commands]
	// max_arg_bytes, 1024 by default).
	Max int
}

// Example is a use of a command shown in help, and run as a test: Line is
// what a user types after the prefix; Want is a substring the reply must
// contain.
type Example struct {
	Line, Want string
}

// Command is one command: a chat command (prefix + name), an XEP-0050
// ad-hoc command node, and a line of help, from one definition.
type Command struct {
	Name    string
	Summary string // one line for help
	Args    []Arg
	Level   Level
	// Global makes Level a bot-wide right: only [commands] admins and
	// users granted the level hold it. Without Global a room's
	// moderators, owners, admins and members hold their room-scoped level
	// when the command is given in (or privately through) that room.
	Global bool
	// Destructive commands ask for confirmation first.
	Destructive bool
	// Preview, when set on a Destructive command, describes what the call
	// would do; the text is shown with the request to confirm. An empty
	// text and a nil error mean this call needs no confirmation (e.g. a
	// "list" action of a command that can also delete); an error refuses
	// the call before it is confirmed.
	Preview func(ctx context.Context, c *Call) (string, error)
	// Stages, when set, makes the ad-hoc command multi-stage: each stage's
	// form shows its Args (prev/next/complete); in chat all arguments are
	// given at once. The command's Args are then the union, in order.
	Stages [][]string
	Example
	// Run carries out the command. It runs on a goroutine of its own, not
	// the chain's; ctx ends after a time limit.
	Run func(ctx context.Context, c *Call) (Reply, error)
}

// Surface is where a command was given.
type Surface int

// Surfaces.
const (
	// SurfaceChat is a chat command, in a room or one-to-one.
	SurfaceChat Surface = iota + 1
	// SurfaceAdHoc is an XEP-0050 command execution.
	SurfaceAdHoc
)

// Call is one run of a command.
type Call struct {
	Command string
	Surface Surface
	// From is the requester's full JID (room/nick in a room); RealJID
	// their bare real JID when known; Room and Nick are set when the
	// command was given in a room (or privately through one).
	From, RealJID, Room, Nick string
	// Level is the requester's level where the command was given.
	Level Level
	// Args holds each argument's value as text, defaults filled.
	Args map[string]string
	Time time.Time
}

// Arg returns an argument's value.
func (c *Call) Arg(name string) string { return c.Args[name] }

// Bool returns a boolean argument's value.
func (c *Call) Bool(name string) bool {
	switch c.Args[name] {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// NoteType is the type of an XEP-0050 note.
type NoteType int

// Note types.
const (
	NoteInfo NoteType = iota
	NoteWarn
	NoteError
)

// Table is a list result: columns and rows (an XEP-0050 form with
// reported/item in ad-hoc, aligned text in chat).
type Table struct {
	Columns []string
	Rows    [][]string
}

// Reply is what a command answers.
type Reply struct {
	// Text is the answer (chat: the message; ad-hoc: an info note unless
	// NoteType says otherwise).
	Text     string
	NoteType NoteType
	Table    *Table
}

// Commander is a plugin that adds commands.
type Commander interface {
	Commands() []Command
}
