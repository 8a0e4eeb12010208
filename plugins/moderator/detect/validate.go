package detect

import (
	"errors"
	"fmt"
	"time"
)

// Validate checks a detector's settings and reports every one out of range,
// each error wrapping ErrConfig; zero values (the defaults) are fine. Word
// lists and patterns are checked when compiled (NewWords, NewPatterns).
func Validate(d Detector) error {
	var errs []error
	ratio := func(name string, v float64) {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%w: %s: %s %g is not between 0 and 1", ErrConfig, d.Name(), name, v))
		}
	}
	count := func(name string, v int) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s: %s %d is negative", ErrConfig, d.Name(), name, v))
		}
	}
	window := func(v time.Duration) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%w: %s: window %s is negative", ErrConfig, d.Name(), v))
		}
	}
	switch d := d.(type) {
	case *Caps:
		ratio("ratio", d.Ratio)
		count("min_letters", d.MinLetters)
	case *Symbols:
		ratio("ratio", d.Ratio)
		count("min_chars", d.MinChars)
	case *Zalgo:
		count("max_per_base", d.MaxPerBase)
	case *Mentions:
		count("max", d.Max)
	case *Links:
		for _, a := range d.Allow {
			if a == "" || len(a) > 253 {
				errs = append(errs, fmt.Errorf("%w: links: allowed domain %q is not a domain", ErrConfig, a))
			}
		}
	case *Flood:
		count("messages", d.Messages)
		count("bytes", d.Bytes)
		count("max_senders", d.MaxSenders)
		window(d.Window)
	case *Raid:
		count("messages", d.Messages)
		count("senders", d.Senders)
		count("max_rooms", d.MaxRooms)
		window(d.Window)
	case *Repeat:
		count("max", d.Max)
		count("min_length", d.MinLength)
		count("history", d.History)
		count("max_senders", d.MaxSenders)
		ratio("similarity", d.Similarity)
		window(d.Window)
	case *Copypasta:
		count("senders", d.Senders)
		count("min_length", d.MinLength)
		count("history", d.History)
		count("max_rooms", d.MaxRooms)
		ratio("similarity", d.Similarity)
		window(d.Window)
	case *JoinWave:
		count("joins", d.Joins)
		count("max_rooms", d.MaxRooms)
		window(d.Window)
	}
	return errors.Join(errs...)
}
