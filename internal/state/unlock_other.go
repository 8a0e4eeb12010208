//go:build !unix

package state

import "os"

// unlock does nothing where bbolt's lock is not a flock.
func unlock(*os.File) {}
