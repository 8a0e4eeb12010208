//go:build linux

package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	madvRandom  = 1  // MADV_RANDOM
	madvPageout = 21 // MADV_PAGEOUT (Linux 5.4)
)

// Release advises every read-only mapping of the running executable (see
// the package comment). Where the kernel does not know MADV_PAGEOUT it
// returns the error and leaves things as they were.
func Release() (Stats, error) {
	var st Stats
	st.RSSBefore, st.FileBefore = resident()
	exe, err := os.Executable()
	if err != nil {
		return st, err
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return st, err
	}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[5] != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		for _, advice := range []uintptr{madvRandom, madvPageout} {
			if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), advice); e != 0 {
				return st, fmt.Errorf("memtrim: madvise(%s, %d): %w", f[0], advice, e)
			}
		}
		st.Mappings++
	}
	st.RSSAfter, st.FileAfter = resident()
	return st, nil
}

// resident reads VmRSS and RssFile of /proc/self/status, in bytes.
func resident() (rss, file int64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var n int64
		if fs := strings.Fields(v); len(fs) == 2 && fs[1] == "kB" {
			n, _ = strconv.ParseInt(fs[0], 10, 64)
		}
		switch k {
		case "VmRSS":
			rss = n << 10
		case "RssFile":
			file = n << 10
		}
	}
	return rss, file
}
