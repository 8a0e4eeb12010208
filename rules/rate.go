package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rate is "N per window", written "60/1m" in config files; "0" (or "") means
// no limit.
type Rate struct {
	N   int
	Per time.Duration
}

// ErrBadRate is returned for a rate that is not N/DURATION.
var ErrBadRate = errors.New(`rules: rate must be "N/DURATION" such as "60/1m", or "0" for none`)

// ParseRate parses "N/DURATION" ("5/10s", "60/1m"); "0" and "" are the zero
// Rate (off). A bare duration unit ("10/s", "60/m", "100/h") is one unit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%w: %q", ErrBadRate, s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 0 {
		return Rate{}, fmt.Errorf("%w: %q", ErrBadRate, s)
	}
	per = strings.TrimSpace(per)
	if per != "" && (per[0] < '0' || per[0] > '9') {
		per = "1" + per
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%w: %q", ErrBadRate, s)
	}
	if count == 0 {
		return Rate{}, nil
	}
	return Rate{N: count, Per: d}, nil
}

// IsZero reports whether r is "no limit".
func (r Rate) IsZero() bool { return r.N == 0 || r.Per == 0 }

// String formats r as it is written in config files.
func (r Rate) String() string {
	if r.IsZero() {
		return "0"
	}
	return fmt.Sprintf("%d/%s", r.N, r.Per)
}

// UnmarshalText lets Rate be decoded from TOML strings.
func (r *Rate) UnmarshalText(b []byte) error {
	v, err := ParseRate(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// MarshalText formats r for encoders.
func (r Rate) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
