package normalize

import "errors"

// Errors returned by this package.
var (
	// ErrUnknownStep is wrapped by ParseSteps for a name that is not a step.
	ErrUnknownStep = errors.New("normalize: unknown step")
)
