//go:build unix

package state

import (
	"os"
	"syscall"
)

// unlock releases bbolt's flock on f. Closing f is not enough after a panic
// in bbolt.Open: the memory map bbolt left holds the open file, and with it
// the lock.
func unlock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
