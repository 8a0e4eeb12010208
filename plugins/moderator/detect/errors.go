package detect

import "errors"

// Errors returned when compiling detectors; each names the offending entry
// or setting in its message.
var (
	// ErrEntry is wrapped by NewWords for an entry that cannot be used.
	ErrEntry = errors.New("detect: bad word list entry")
	// ErrPattern is wrapped by NewPatterns for a pattern that is not valid
	// RE2 syntax or is too long.
	ErrPattern = errors.New("detect: bad pattern")
	// ErrConfig is wrapped by Validate for a detector setting out of range.
	ErrConfig = errors.New("detect: bad setting")
)
