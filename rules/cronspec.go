package rules

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser reads the schedule key: five fields ("min hour dom month
// dow"), an optional leading seconds field, or a descriptor (@yearly,
// @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every
// DURATION). Months and week days may be named ("jan", "mon").
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// schedule is a parsed cron spec bound to the zone it is read in.
type schedule struct {
	spec cron.Schedule
	loc  *time.Location
}

// next returns the first activation strictly after t, or the zero time when
// there is none within five years (a spec such as "0 0 30 2 *" never
// fires). The spec is evaluated on the wall clock of the job's zone: the
// parser leaves a spec's own zone at time.Local, which robfig/cron reads as
// "the zone of the time given", so t is moved into loc first. The result
// is in t's zone.
func (s schedule) next(t time.Time) time.Time {
	n := s.spec.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.In(t.Location())
}

// parseSchedule parses a cron spec read in loc. A zone prefix (TZ= or
// CRON_TZ=) is refused: the timezone key says the zone, and one way to say
// it is enough.
func parseSchedule(spec string, loc *time.Location) (sched schedule, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return schedule{}, fmt.Errorf("schedule is required")
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return schedule{}, fmt.Errorf("schedule %q: set the zone with the timezone key", spec)
	}
	orig := spec
	if rest, ok := strings.CutPrefix(spec, "@every"); ok && (rest == "" || rest[0] == ' ' || rest[0] == '\t') {
		// robfig/cron turns a negative or zero interval into one second;
		// such a spec is a mistake, so it is refused here.
		d, perr := time.ParseDuration(strings.TrimSpace(rest))
		if perr != nil || d <= 0 {
			return schedule{}, fmt.Errorf("schedule %q: @every wants a positive duration such as 30s", spec)
		}
		spec = "@every " + d.String()
	}
	// The parser is outside code reading user input: a panic in it must
	// become an error in the config report, not a crash of the daemon.
	defer func() {
		if r := recover(); r != nil {
			sched, err = schedule{}, fmt.Errorf("schedule %q: cannot be parsed", orig)
		}
	}()
	s, err := cronParser.Parse(spec)
	if err != nil {
		return schedule{}, fmt.Errorf("schedule %q: %v", orig, err)
	}
	return schedule{spec: s, loc: loc}, nil
}
