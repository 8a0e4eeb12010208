package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors of this package. Load reports the problems of a file as a
// diag.List; these sentinels are for the values that can fail on their own.
var (
	// ErrBadDuration is returned for a duration that is neither a Go
	// duration ("30s", "1m30s") nor a number of seconds.
	ErrBadDuration = errors.New(`config: duration must look like "30s" or "1m30s", or be a number of seconds`)

	// ErrRestart is returned by Diff when a change cannot be applied to a
	// running daemon; the error names the fields.
	ErrRestart = errors.New("config: change needs a restart")
)

// redacted is what a non-empty Secret prints as.
const redacted = "[redacted]"

// Secret is a string that never prints: fmt (every verb, %#v included),
// log/slog and text or JSON encoders all see "[redacted]" when it is set and
// "" when it is empty. Use Reveal to get the value.
type Secret string

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]" for a set secret and "" for an empty one.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the same as String, so that %#v prints no secret.
func (s Secret) GoString() string { return s.String() }

// Format prints the redacted form whatever the verb, so that %x, %q or %d
// cannot leak the value either.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// MarshalText returns the redacted form, for encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue returns the redacted form, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Duration is a time.Duration decoded from a string such as "30s" or
// "1m30s", or from a number of seconds (30, 1.5).
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d as time.Duration does ("30s", "1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText formats d as it is written in config files.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration or a number of seconds. A negative
// value parses; validation refuses it with the key's line.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration parses "30s", "1m30s" (time.ParseDuration) or a number of
// seconds ("30", "1.5").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if v, err := time.ParseDuration(s); err == nil {
		return Duration(v), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) ||
		math.Abs(f) > float64(math.MaxInt64)/float64(time.Second) {
		return 0, fmt.Errorf("%w: %q", ErrBadDuration, s)
	}
	return Duration(f * float64(time.Second)), nil
}
