// Package memtrim gives back the resident pages of the executable's own
// file that a daemon at rest does not use.
//
// Most of an idle Go daemon's resident memory is its binary: the kernel
// maps code and read-only data in on demand, but it reads around each
// fault (64 KiB on this kernel), so after start-up nearly the whole text
// of the binary is resident although the loop the daemon then runs
// touches a small part of it. Release drops those clean, file-backed pages
// (MADV_PAGEOUT: they are re-read from the page cache on the next touch,
// nothing is written) and asks the kernel not to read around later faults
// in them (MADV_RANDOM), so what becomes resident again is what the
// daemon really runs. The heap, stacks and writable data are not touched.
package memtrim

// Stats are the process's resident set before and after Release, in
// bytes, from /proc/self/status (VmRSS, RssFile).
type Stats struct {
	RSSBefore, RSSAfter   int64
	FileBefore, FileAfter int64
	Mappings              int // mappings of the executable that were advised
}
