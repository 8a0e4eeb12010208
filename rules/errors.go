package rules

import "errors"

// Errors reported at run time. Problems in a user's rules are reported by
// Compile and CompileCron as a diag.List instead, one entry per problem.
var (
	// ErrTemplate wraps a template that failed while rendering an action.
	ErrTemplate = errors.New("rules: template failed")
	// ErrNoTarget is logged when an action rendered an empty target (no
	// room, nick or address to act on) and was dropped.
	ErrNoTarget = errors.New("rules: action has no target")
)
