package moderator

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"crier/internal/config"
	"crier/plugins"
	"crier/plugins/moderator/detect"
	"crier/plugins/moderator/normalize"
)

// Config is the [moderator] table: the settings every watched room uses,
// the rooms, the alert target and the per-room overrides.
type Config struct {
	// Rooms are the rooms watched; empty means every room the bot is in.
	Rooms []string `toml:"rooms"`
	// Alert lists where failures to act and observed actions are
	// reported: rooms (groupchat) or JIDs (chat).
	Alert []string `toml:"alert"`
	// Subject is the NATS subject each action is published on as JSON;
	// empty: none.
	Subject string `toml:"subject"`
	// CaseRetention is how long a case is kept in the store; 0 keeps
	// cases for good.
	CaseRetention config.Duration `toml:"case_retention"`
	// BanList is the ban list shared by the watched rooms and, with a
	// bucket, by other crier instances.
	BanList BanList `toml:"banlist"`
	Settings
	// Room holds per-room overrides: each [[moderator.room]] names a room
	// (jid) and any of the keys of Settings; keys it does not write keep
	// the [moderator] value.
	Room []RoomConfig `toml:"room"`

	// enabled is set by Check: the [moderator] table is written.
	enabled bool
	// fileWords holds the entries of each words file (by resolved name),
	// read by Check.
	fileWords map[string][]string
}

// RoomConfig is one [[moderator.room]] override.
type RoomConfig struct {
	JID string `toml:"jid"`
	Settings
}

// Settings are the keys a room may override.
type Settings struct {
	// DryRun is observe mode: report what would be done, do nothing.
	DryRun bool `toml:"dry_run"`
	// Exempt lists affiliations (owner, admin, member), roles (moderator,
	// participant) and bare JIDs left alone.
	Exempt []string `toml:"exempt"`
	// Words are blocked words and phrases (the list "words").
	Words []string `toml:"words"`
	// WordsFile is a file of more entries, one a line ("#" comments).
	WordsFile string `toml:"words_file"`
	// Allow are entries that excuse a blocked match they contain.
	Allow []string `toml:"allow"`
	// WordPoints is the weight of a match of Words.
	WordPoints int `toml:"word_points"`
	// Lists are further named word lists.
	Lists []WordList `toml:"lists"`
	// Patterns are RE2 rules.
	Patterns []Pattern `toml:"patterns"`
	// Steps are the normalisation steps of the word lists (see
	// normalize.ParseSteps); empty: all.
	Steps []string `toml:"steps"`
	// Observe lists detectors ("caps") or rules ("words/spam") whose hits
	// are only reported.
	Observe []string `toml:"observe"`
	// Retract lists detectors whose hits also retract the message.
	Retract []string `toml:"retract"`
	// RetractFallback is the action taken instead when a message cannot be
	// retracted: none, warn, mute or kick.
	RetractFallback string `toml:"retract_fallback"`
	// Threshold is the fewest points a message must score to count.
	Threshold int `toml:"threshold"`
	// Ladder maps strike points to actions.
	Ladder []Step `toml:"ladder"`
	// Decay is how long one strike point lasts: points go down by one per
	// Decay.
	Decay config.Duration `toml:"decay"`
	// Cooldown is how long escalation never steps back down.
	Cooldown config.Duration `toml:"cooldown"`
	// Warn is where a warning goes: room (a message naming the nick) or
	// private.
	Warn string `toml:"warn"`
	// NickAction is what a blocked nick gets: none, warn, kick or ban.
	NickAction string `toml:"nick_action"`
	// GoOn lists detectors ("caps") or rules ("regex/spam") whose
	// punishment lets the message go on down the chain (to commands and
	// rules); by default a message acted on stops at the moderator.
	GoOn []string `toml:"go_on"`

	SlowMode SlowMode `toml:"slowmode"`

	Flood     Flood     `toml:"flood"`
	Raid      Raid      `toml:"raid"`
	Repeat    Repeat    `toml:"repeat"`
	Copypasta Copypasta `toml:"copypasta"`
	Caps      Caps      `toml:"caps"`
	Symbols   Symbols   `toml:"symbols"`
	Zalgo     Zalgo     `toml:"zalgo"`
	Links     Links     `toml:"links"`
	Mentions  Mentions  `toml:"mentions"`
	JoinWave  JoinWave  `toml:"joinwave"`
}

// BanList is [moderator.banlist]: bans the moderator makes (the ladder's
// ban step, the ban command, and tempbans when Tempbans is set) go on a
// list that every watched room applies, and with Bucket every crier
// instance that names the same NATS JetStream KV bucket.
type BanList struct {
	Enabled  bool `toml:"enabled"`
	Tempbans bool `toml:"tempbans"`
	// Bucket is the KV bucket shared with other instances (needs [nats]
	// or [ha]); empty: the list is this instance's own.
	Bucket string `toml:"bucket"`
	// Poll is how often the shared list is read for entries other
	// instances added or removed.
	Poll config.Duration `toml:"poll"`
}

// SlowMode is [moderator.slowmode]: one message per occupant per
// Interval; a message sooner is a finding of the detector "slowmode".
// The slowmode command changes the interval of a room at run time.
type SlowMode struct {
	Interval config.Duration `toml:"interval"`
	Points   int             `toml:"points"`
	// RaidInterval is the slow mode a raid or join wave with action
	// "slowmode" sets for its duration (when longer than the room's own).
	RaidInterval config.Duration `toml:"raid_interval"`
}

// WordList is one [[moderator.lists]] entry.
type WordList struct {
	Name      string   `toml:"name"`
	Points    int      `toml:"points"`
	Words     []string `toml:"words"`
	WordsFile string   `toml:"words_file"`
	Allow     []string `toml:"allow"`
}

// Pattern is one [[moderator.patterns]] rule.
type Pattern struct {
	Name   string `toml:"name"`
	Expr   string `toml:"expr"`
	Points int    `toml:"points"`
	// Raw matches the message as received instead of its normalised text.
	Raw bool `toml:"raw"`
	// Observe reports the rule's hits only.
	Observe bool `toml:"observe"`
}

// Step is one rung of the escalation ladder.
type Step struct {
	Points int    `toml:"points"`
	Action string `toml:"action"`
	// Duration is how long a mute or tempban lasts.
	Duration config.Duration `toml:"duration"`
}

// Flood is [moderator.flood]: messages or bytes per sender and window.
type Flood struct {
	Enabled  bool            `toml:"enabled"`
	Messages int             `toml:"messages"`
	Bytes    int             `toml:"bytes"`
	Window   config.Duration `toml:"window"`
	Points   int             `toml:"points"`
}

// Raid is [moderator.raid]: many senders flooding the room at once. A raid
// is a room finding: the room gets Action for Duration.
type Raid struct {
	Enabled  bool            `toml:"enabled"`
	Messages int             `toml:"messages"`
	Senders  int             `toml:"senders"`
	Window   config.Duration `toml:"window"`
	Action   string          `toml:"action"`
	Duration config.Duration `toml:"duration"`
}

// Repeat is [moderator.repeat]: one sender's repeated or near-duplicate
// messages.
type Repeat struct {
	Enabled    bool            `toml:"enabled"`
	Max        int             `toml:"max"`
	Window     config.Duration `toml:"window"`
	Similarity float64         `toml:"similarity"`
	MinLength  int             `toml:"min_length"`
	Points     int             `toml:"points"`
}

// Copypasta is [moderator.copypasta]: the same text from many senders.
type Copypasta struct {
	Enabled    bool            `toml:"enabled"`
	Senders    int             `toml:"senders"`
	Window     config.Duration `toml:"window"`
	Similarity float64         `toml:"similarity"`
	MinLength  int             `toml:"min_length"`
	Points     int             `toml:"points"`
}

// Caps is [moderator.caps]: the share of capitals.
type Caps struct {
	Enabled    bool    `toml:"enabled"`
	MinLetters int     `toml:"min_letters"`
	Ratio      float64 `toml:"ratio"`
	Points     int     `toml:"points"`
}

// Symbols is [moderator.symbols]: the share of symbols.
type Symbols struct {
	Enabled  bool    `toml:"enabled"`
	MinChars int     `toml:"min_chars"`
	Ratio    float64 `toml:"ratio"`
	Points   int     `toml:"points"`
}

// Zalgo is [moderator.zalgo]: stacks of combining marks.
type Zalgo struct {
	Enabled    bool `toml:"enabled"`
	MaxPerBase int  `toml:"max_per_base"`
	Points     int  `toml:"points"`
}

// Links is [moderator.links]: links and invites outside the allow-list,
// weighing more in a newcomer's first minutes.
type Links struct {
	Enabled      bool     `toml:"enabled"`
	Allow        []string `toml:"allow"`
	Loose        bool     `toml:"loose"`
	Points       int      `toml:"points"`
	InvitePoints int      `toml:"invite_points"`
	// Newcomer is how long after joining an occupant is a newcomer.
	Newcomer config.Duration `toml:"newcomer"`
	// NewcomerPoints are added to a newcomer's link.
	NewcomerPoints int `toml:"newcomer_points"`
}

// Mentions is [moderator.mentions]: many occupants' nicks in one message.
type Mentions struct {
	Enabled bool `toml:"enabled"`
	Max     int  `toml:"max"`
	Points  int  `toml:"points"`
}

// JoinWave is [moderator.joinwave]: many joins in a short time make the
// room members-only or moderated for Duration.
type JoinWave struct {
	Enabled  bool            `toml:"enabled"`
	Joins    int             `toml:"joins"`
	Window   config.Duration `toml:"window"`
	Action   string          `toml:"action"`
	Duration config.Duration `toml:"duration"`
}

// Actions a ladder step may name.
const (
	ActNone    = "none"
	ActWarn    = "warn"
	ActRetract = "retract"
	ActMute    = "mute"
	ActKick    = "kick"
	ActTempban = "tempban"
	ActBan     = "ban"
	ActAlert   = "alert"
)

// Room-level actions of the raid and join-wave detectors.
const (
	RoomMembersOnly = "members_only"
	RoomModerated   = "moderated"
	// RoomSlowMode puts the room in slow mode ([moderator.slowmode]
	// raid_interval), enforced by the moderator.
	RoomSlowMode = "slowmode"
)

// exemptNames are the affiliations and roles exempt may list.
var exemptNames = []string{"owner", "admin", "member", "moderator", "participant", "visitor"}

var ladderActions = []string{ActNone, ActAlert, ActWarn, ActRetract, ActMute, ActKick, ActTempban, ActBan}

// defaultConfig is the [moderator] table's defaults: tuned for a busy game
// chat, where short shouting and "gg" floods are normal and raids come in
// waves.
func defaultConfig() *Config {
	return &Config{CaseRetention: config.Duration(90 * 24 * time.Hour), BanList: BanList{Poll: config.Duration(5 * time.Second)}, Settings: Settings{
		Exempt:          []string{"owner", "admin", "moderator"},
		WordPoints:      3,
		Retract:         []string{"words", "regex", "links", "slowmode"},
		RetractFallback: ActWarn,
		Threshold:       1,
		Ladder: []Step{
			{Points: 1, Action: ActWarn},
			{Points: 4, Action: ActMute, Duration: config.Duration(5 * time.Minute)},
			{Points: 7, Action: ActKick},
			{Points: 10, Action: ActTempban, Duration: config.Duration(time.Hour)},
			{Points: 16, Action: ActBan},
		},
		Decay:      config.Duration(2 * time.Minute),
		Cooldown:   config.Duration(10 * time.Minute),
		Warn:       "room",
		NickAction: ActKick,
		Flood:      Flood{Enabled: true, Messages: 6, Bytes: 3000, Window: config.Duration(5 * time.Second), Points: 2},
		Raid:       Raid{Enabled: true, Messages: 30, Senders: 6, Window: config.Duration(10 * time.Second), Action: RoomModerated, Duration: config.Duration(5 * time.Minute)},
		Repeat:     Repeat{Enabled: true, Max: 3, Window: config.Duration(time.Minute), Similarity: 0.85, MinLength: 8, Points: 1},
		Copypasta:  Copypasta{Enabled: true, Senders: 4, Window: config.Duration(time.Minute), Similarity: 0.85, MinLength: 16, Points: 2},
		Caps:       Caps{Enabled: true, MinLetters: 16, Ratio: 0.75, Points: 1},
		Symbols:    Symbols{Enabled: true, MinChars: 16, Ratio: 0.6, Points: 1},
		Zalgo:      Zalgo{Enabled: true, MaxPerBase: 3, Points: 2},
		Links:      Links{Enabled: true, Loose: true, Points: 2, InvitePoints: 3, Newcomer: config.Duration(5 * time.Minute), NewcomerPoints: 2},
		Mentions:   Mentions{Enabled: true, Max: 5, Points: 3},
		SlowMode:   SlowMode{Points: 1, RaidInterval: config.Duration(10 * time.Second)},
		JoinWave:   JoinWave{Enabled: true, Joins: 10, Window: config.Duration(10 * time.Second), Action: RoomMembersOnly, Duration: config.Duration(10 * time.Minute)},
	}}
}

// Check validates the table and fills each room override from [moderator]
// for the keys the override does not write. Every problem is reported at
// its line.
func (c *Config) Check(ck plugins.Checker) {
	c.enabled = ck.Written("")
	for i := range c.Rooms {
		c.Rooms[i] = bareJID(ck, fmt.Sprintf("rooms[%d]", i), c.Rooms[i])
	}
	for i := range c.Alert {
		c.Alert[i] = bareJID(ck, fmt.Sprintf("alert[%d]", i), c.Alert[i])
	}
	if strings.ContainsAny(c.Subject, " \t\r\n") {
		ck.Errorf("subject", "a NATS subject has no white space")
	}
	if c.CaseRetention.Std() < 0 {
		ck.Errorf("case_retention", "must not be negative (0 keeps cases for good)")
	}
	if b := c.BanList; b.Bucket != "" && !validBucket(b.Bucket) {
		ck.Errorf("banlist.bucket", "%q is not a KV bucket name (letters, digits, - and _)", b.Bucket)
	} else if b.Bucket != "" && !ck.Core().NATS {
		ck.Errorf("banlist.bucket", "a shared ban list needs NATS: [nats] url (or [embedded] nats)")
	}
	if c.BanList.Poll.Std() <= 0 {
		ck.Errorf("banlist.poll", "must be positive")
	}
	if (c.BanList.Bucket != "" || c.BanList.Tempbans) && !c.BanList.Enabled {
		ck.Errorf("banlist.enabled", "bucket and tempbans need enabled = true")
	}
	c.fileWords = map[string][]string{}
	c.Settings.check(ck, "", c.fileWords)
	seen := map[string]bool{}
	for i := range c.Room {
		r := &c.Room[i]
		key := fmt.Sprintf("room[%d]", i)
		r.JID = bareJID(ck, key+".jid", r.JID)
		if seen[r.JID] {
			ck.Errorf(key+".jid", "room %s has two overrides", r.JID)
		}
		seen[r.JID] = true
		inherit(reflect.ValueOf(&r.Settings).Elem(), reflect.ValueOf(&c.Settings).Elem(), key, ck)
		r.Settings.check(writtenOnly{ck, key + "."}, key+".", c.fileWords)
	}
}

// writtenOnly reports only the problems of keys an override writes: the
// values it inherits were reported at the [moderator] table already.
type writtenOnly struct {
	plugins.Checker
	pre string
}

func (w writtenOnly) Errorf(key, format string, args ...any) {
	top, _, _ := strings.Cut(strings.TrimPrefix(key, w.pre), ".")
	top, _, _ = strings.Cut(top, "[")
	if w.Written(w.pre + top) {
		w.Checker.Errorf(key, format, args...)
	}
}

// inherit copies into dst every key of src that the override at path does
// not write, table by table.
func inherit(dst, src reflect.Value, path string, ck plugins.Checker) {
	t := dst.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name := strings.Split(sf.Tag.Get("toml"), ",")[0]
		if name == "" || !sf.IsExported() {
			continue
		}
		key := path + "." + name
		if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeOf(config.Duration(0)) && ck.Written(key) {
			inherit(dst.Field(i), src.Field(i), key, ck)
			continue
		}
		if !ck.Written(key) {
			dst.Field(i).Set(src.Field(i))
		}
	}
}

// check validates one set of settings; pre is the key prefix ("" or
// "room[0].").
func (s *Settings) check(ck plugins.Checker, pre string, files map[string][]string) {
	e := func(key, format string, args ...any) { ck.Errorf(pre+key, format, args...) }
	if _, err := normalize.ParseSteps(s.Steps); err != nil {
		e("steps", "%v", err)
	}
	for _, n := range s.Observe {
		if n == "" {
			e("observe", "an empty rule name")
		}
	}
	for _, n := range s.GoOn {
		if n == "" {
			e("go_on", "an empty rule name")
		} else if d, _, _ := strings.Cut(n, "/"); !slices.Contains(detectorNames, d) {
			e("go_on", "%q is not a detector or detector/rule (%s)", n, strings.Join(detectorNames, ", "))
		}
	}
	if s.SlowMode.Interval.Std() < 0 {
		e("slowmode.interval", "must not be negative (0: off)")
	}
	if s.SlowMode.RaidInterval.Std() <= 0 {
		e("slowmode.raid_interval", "must be positive")
	}
	if s.SlowMode.Points < 1 {
		e("slowmode.points", "must be at least 1")
	}
	for _, n := range s.Retract {
		if !slices.Contains(detectorNames, n) {
			e("retract", "%q is not a detector (%s)", n, strings.Join(detectorNames, ", "))
		}
	}
	if !slices.Contains([]string{ActNone, ActWarn, ActMute, ActKick}, s.RetractFallback) {
		e("retract_fallback", "%q is not none, warn, mute or kick", s.RetractFallback)
	}
	if !slices.Contains([]string{ActNone, ActWarn, ActKick, ActBan}, s.NickAction) {
		e("nick_action", "%q is not none, warn, kick or ban", s.NickAction)
	}
	if s.Warn != "room" && s.Warn != "private" {
		e("warn", "%q is not room or private", s.Warn)
	}
	if s.Threshold < 1 {
		e("threshold", "must be at least 1")
	}
	if s.Decay.Std() <= 0 {
		e("decay", "must be positive")
	}
	if s.Cooldown.Std() < 0 {
		e("cooldown", "must not be negative")
	}
	if len(s.Ladder) == 0 {
		e("ladder", "needs at least one step")
	}
	for i, st := range s.Ladder {
		k := fmt.Sprintf("ladder[%d]", i)
		switch {
		case !slices.Contains(ladderActions, st.Action):
			e(k+".action", "%q is not one of %s", st.Action, strings.Join(ladderActions, ", "))
		case (st.Action == ActMute || st.Action == ActTempban) && st.Duration.Std() <= 0:
			e(k+".duration", "a %s needs a positive duration", st.Action)
		}
		if st.Points < 1 {
			e(k+".points", "must be at least 1")
		}
		if i > 0 && st.Points <= s.Ladder[i-1].Points {
			e(k+".points", "steps must go up: %d after %d", st.Points, s.Ladder[i-1].Points)
		}
	}
	for _, ra := range []struct {
		key, action string
		d           config.Duration
	}{{"raid", s.Raid.Action, s.Raid.Duration}, {"joinwave", s.JoinWave.Action, s.JoinWave.Duration}} {
		if ra.action != RoomMembersOnly && ra.action != RoomModerated && ra.action != RoomSlowMode && ra.action != ActAlert {
			e(ra.key+".action", "%q is not members_only, moderated, slowmode or alert", ra.action)
		}
		if ra.d.Std() <= 0 && ra.action != ActAlert {
			e(ra.key+".duration", "must be positive")
		}
	}
	// A words file is read once, under its resolved name, which replaces
	// the name written.
	readFile := func(key string, name *string) {
		if *name == "" {
			return
		}
		path := ck.Resolve(*name)
		*name = path
		if _, ok := files[path]; ok {
			return
		}
		w, err := readWordsFile(path)
		if err != nil {
			e(key, "%v", err)
		}
		files[path] = w
	}
	readFile("words_file", &s.WordsFile)
	names := map[string]bool{"words": true}
	for i := range s.Lists {
		l := &s.Lists[i]
		k := fmt.Sprintf("lists[%d]", i)
		if l.Name == "" || names[l.Name] {
			e(k+".name", "a list needs a name of its own (%q)", l.Name)
		}
		names[l.Name] = true
		readFile(k+".words_file", &l.WordsFile)
	}
	for i, x := range s.Exempt {
		if !slices.Contains(exemptNames, x) && (!strings.Contains(x, "@") || !isBareJID(x)) {
			e(fmt.Sprintf("exempt[%d]", i), "%q is neither an affiliation, a role nor a bare JID", x)
		}
	}
	steps, _ := normalize.ParseSteps(s.Steps)
	if len(s.Steps) == 0 {
		steps = normalize.All
	}
	n := normalize.New(steps)
	for i, l := range s.wordLists(files) {
		if len(l.Words) == 0 {
			continue
		}
		if _, err := detect.NewWords(n, l); err != nil {
			key := "words"
			if i > 0 {
				key = fmt.Sprintf("lists[%d].words", i-1)
			}
			for _, err := range unjoin(err) {
				e(key, "%v", err)
			}
		}
	}
	for i, p := range s.Patterns {
		if _, err := detect.NewPatterns(detect.Pattern{Name: p.Name, Expr: p.Expr, Points: p.Points, Raw: p.Raw}); err != nil {
			for _, err := range unjoin(err) {
				e(fmt.Sprintf("patterns[%d].expr", i), "%v", err)
			}
		}
	}
	for _, d := range s.detectors(nil) {
		if err := detect.Validate(d); err != nil {
			for _, err := range unjoin(err) {
				e(d.Name(), "%v", err)
			}
		}
	}
}

// wordLists returns the word lists: "words" first (even when empty, so
// that indexes match Lists+1), then Lists.
func (s *Settings) wordLists(files map[string][]string) []detect.WordList {
	words := slices.Clone(s.Words)
	if s.WordsFile != "" {
		words = append(words, files[s.WordsFile]...)
	}
	out := []detect.WordList{{Name: "words", Points: s.WordPoints, Words: words, Allow: s.Allow}}
	for _, l := range s.Lists {
		w := slices.Clone(l.Words)
		if l.WordsFile != "" {
			w = append(w, files[l.WordsFile]...)
		}
		out = append(out, detect.WordList{Name: l.Name, Points: l.Points, Words: w, Allow: append(slices.Clone(l.Allow), s.Allow...)})
	}
	return out
}

// detectorNames are the detectors' names as verdicts give them.
var detectorNames = []string{"words", "regex", "caps", "symbols", "zalgo", "links", "mentions", "flood", "raid", "repeat", "copypasta", "joinwave", "nick", "slowmode"}

// validBucket reports whether name is a JetStream KV bucket name.
func validBucket(name string) bool {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return name != "" && len(name) <= 64
}

// detectors returns the enabled message and join detectors with clock.
func (s *Settings) detectors(clock detect.Clock) []detect.Detector {
	var out []detect.Detector
	if f := s.Flood; f.Enabled {
		out = append(out, &detect.Flood{Messages: f.Messages, Bytes: f.Bytes, Window: f.Window.Std(), Points: f.Points, Clock: clock})
	}
	if r := s.Raid; r.Enabled {
		out = append(out, &detect.Raid{Messages: r.Messages, Senders: r.Senders, Window: r.Window.Std(), Clock: clock})
	}
	if r := s.Repeat; r.Enabled {
		out = append(out, &detect.Repeat{Max: r.Max, Window: r.Window.Std(), Similarity: r.Similarity, MinLength: r.MinLength, Points: r.Points, Clock: clock})
	}
	if c := s.Copypasta; c.Enabled {
		out = append(out, &detect.Copypasta{Senders: c.Senders, Window: c.Window.Std(), Similarity: c.Similarity, MinLength: c.MinLength, Points: c.Points, Clock: clock})
	}
	if c := s.Caps; c.Enabled {
		out = append(out, &detect.Caps{MinLetters: c.MinLetters, Ratio: c.Ratio, Points: c.Points})
	}
	if c := s.Symbols; c.Enabled {
		out = append(out, &detect.Symbols{MinChars: c.MinChars, Ratio: c.Ratio, Points: c.Points})
	}
	if z := s.Zalgo; z.Enabled {
		out = append(out, &detect.Zalgo{MaxPerBase: z.MaxPerBase, Points: z.Points})
	}
	if l := s.Links; l.Enabled {
		out = append(out, &detect.Links{Allow: l.Allow, Loose: l.Loose, Points: l.Points, InvitePoints: l.InvitePoints})
	}
	if m := s.Mentions; m.Enabled {
		out = append(out, &detect.Mentions{Max: m.Max, Points: m.Points})
	}
	if j := s.JoinWave; j.Enabled {
		out = append(out, &detect.JoinWave{Joins: j.Joins, Window: j.Window.Std(), Clock: clock})
	}
	return out
}

// readWordsFile reads a word list file: one entry a line, blank lines and
// lines starting with "#" skipped.
func readWordsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// bareJID checks a bare JID and returns it in its normal form (as the
// bot's events carry it).
func bareJID(ck plugins.Checker, key, s string) string {
	j, err := jid.Parse(s)
	if err != nil || s == "" || j.Resourcepart() != "" {
		ck.Errorf(key, "%q is not a bare JID", s)
		return s
	}
	return j.String()
}

func isBareJID(s string) bool {
	j, err := jid.Parse(s)
	return err == nil && s != "" && j.Resourcepart() == "" && j.String() == s
}

// Enabled reports whether the [moderator] table is written (known once
// the config loader checked it).
func (c *Config) Enabled() bool { return c.enabled }
