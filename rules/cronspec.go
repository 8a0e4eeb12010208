package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// schedule is a parsed cron spec. The syntax is robfig/cron v3's with an
// optional seconds field: "sec min hour dom month dow" or "min hour dom
// month dow", each field "*", "?", "N", "A-B", "*/S", "A-B/S", "N/S" or a
// comma list of those; months and week days may be named ("jan", "mon").
// Descriptors: @yearly, @annually, @monthly, @weekly, @daily, @midnight,
// @hourly and @every DURATION.
type schedule interface {
	// next returns the first activation strictly after t, or the zero time.
	next(t time.Time) time.Time
}

// every is "@every DURATION": activations every d, rounded to whole seconds
// as robfig/cron does.
type every time.Duration

func (e every) next(t time.Time) time.Time {
	return t.Add(time.Duration(e) - time.Duration(t.Nanosecond()))
}

// specSchedule is a field-based schedule: in each field, bit i is set when
// value i is allowed.
type specSchedule struct {
	sec, min, hour, dom, month, dow uint64
	domStar, dowStar                bool
	loc                             *time.Location
}

type fieldBounds struct {
	min, max uint
	names    map[string]uint
}

var (
	boundSec   = fieldBounds{0, 59, nil}
	boundMin   = fieldBounds{0, 59, nil}
	boundHour  = fieldBounds{0, 23, nil}
	boundDom   = fieldBounds{1, 31, nil}
	boundMonth = fieldBounds{1, 12, map[string]uint{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}}
	boundDow = fieldBounds{0, 6, map[string]uint{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}}
)

// parseCron parses spec in loc.
func parseCron(spec string, loc *time.Location) (schedule, error) {
	spec = strings.TrimSpace(spec)
	if strings.HasPrefix(spec, "@") {
		return parseDescriptor(spec, loc)
	}
	f := strings.Fields(spec)
	switch len(f) {
	case 5:
		f = append([]string{"0"}, f...)
	case 6:
	default:
		return nil, fmt.Errorf("want 5 or 6 fields, got %d", len(f))
	}
	s := &specSchedule{loc: loc}
	var err error
	for i, p := range []struct {
		dst *uint64
		b   fieldBounds
	}{{&s.sec, boundSec}, {&s.min, boundMin}, {&s.hour, boundHour}, {&s.dom, boundDom}, {&s.month, boundMonth}, {&s.dow, boundDow}} {
		if *p.dst, err = parseField(f[i], p.b); err != nil {
			return nil, err
		}
	}
	s.domStar = f[3] == "*" || f[3] == "?"
	s.dowStar = f[5] == "*" || f[5] == "?"
	return s, nil
}

func parseDescriptor(d string, loc *time.Location) (schedule, error) {
	full := func(b fieldBounds) uint64 { return bits(b.min, b.max, 1) }
	s := &specSchedule{sec: 1, min: 1, hour: 1, dom: 1 << 1, month: full(boundMonth), dow: full(boundDow), loc: loc, dowStar: true}
	switch d {
	case "@yearly", "@annually":
		s.month = 1 << 1
	case "@monthly":
	case "@weekly":
		s.dom, s.dow, s.domStar, s.dowStar = full(boundDom), 1, true, false
	case "@daily", "@midnight":
		s.dom, s.domStar = full(boundDom), true
	case "@hourly":
		s.dom, s.domStar, s.hour = full(boundDom), true, full(boundHour)
	default:
		rest, ok := strings.CutPrefix(d, "@every ")
		if !ok {
			return nil, fmt.Errorf("unknown descriptor %q", d)
		}
		dur, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || dur <= 0 {
			return nil, fmt.Errorf("@every wants a positive duration, got %q", rest)
		}
		return every(max(dur.Truncate(time.Second), time.Second)), nil
	}
	return s, nil
}

func bits(lo, hi, step uint) uint64 {
	var b uint64
	for i := lo; i <= hi; i += step {
		b |= 1 << i
	}
	return b
}

// parseField reads a comma list of ranges with optional steps.
func parseField(field string, b fieldBounds) (uint64, error) {
	var out uint64
	for _, part := range strings.Split(field, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := uint(1)
		if hasStep {
			n, err := strconv.ParseUint(stepStr, 10, 8)
			if err != nil || n == 0 {
				return 0, fmt.Errorf("bad step in %q", part)
			}
			step = uint(n)
		}
		var lo, hi uint
		switch {
		case rng == "*" || rng == "?":
			lo, hi = b.min, b.max
		default:
			a, z, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = fieldValue(a, b); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = fieldValue(z, b); err != nil {
					return 0, err
				}
			} else if hasStep {
				hi = b.max
			}
		}
		if lo > hi {
			return 0, fmt.Errorf("range %q goes backwards", part)
		}
		out |= bits(lo, hi, step)
	}
	return out, nil
}

func fieldValue(s string, b fieldBounds) (uint, error) {
	if v, ok := b.names[strings.ToLower(s)]; ok {
		return v, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", s)
	}
	if uint(n) < b.min || uint(n) > b.max {
		return 0, fmt.Errorf("value %d out of range [%d, %d]", n, b.min, b.max)
	}
	return uint(n), nil
}

// next walks forward field by field, from the month down to the second,
// resetting the lower fields whenever a higher one moves; time.Date
// normalises overflow and daylight-saving gaps. It gives up after five
// years (a spec such as "0 0 30 2 *" never fires).
func (s *specSchedule) next(t time.Time) time.Time {
	orig := t.Location()
	t = t.In(s.loc).Add(time.Second - time.Duration(t.Nanosecond()))
	limit := t.Year() + 5
	for t.Year() <= limit {
		prev := t
		switch {
		case s.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.loc)
		case s.hour&(1<<uint(t.Hour())) == 0:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, s.loc)
		case s.min&(1<<uint(t.Minute())) == 0:
			t = t.Truncate(time.Minute).Add(time.Minute)
		case s.sec&(1<<uint(t.Second())) == 0:
			t = t.Add(time.Second)
		default:
			return t.In(orig)
		}
		// A wall time in a daylight-saving gap may normalise backwards;
		// crawl forward instead so that the walk always ends.
		if !t.After(prev) {
			t = prev.Truncate(time.Minute).Add(time.Minute)
		}
	}
	return time.Time{}
}

// dayMatches follows cron: when both day fields are restricted, either may
// match; otherwise the restricted one must.
func (s *specSchedule) dayMatches(t time.Time) bool {
	dom := s.dom&(1<<uint(t.Day())) != 0
	dow := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}
