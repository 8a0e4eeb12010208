// Package buildinfo tells what build of crier is running: its version, the
// VCS revision it was built from and the Go toolchain that built it, read
// from the binary's own build information (runtime/debug.ReadBuildInfo).
//
//	info := buildinfo.Read(version) // version: set with -ldflags, or ""
//	fmt.Println(info.Version, info.Revision, info.GoVersion)
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Unknown is the revision of a build without VCS information (go run of
// a file list, a build outside a checkout, -buildvcs=false, go test).
const Unknown = "unknown"

// Info describes one build.
type Info struct {
	// Version is the release version ("v1.2.0"), or "devel" for a build
	// of a checkout.
	Version string
	// Revision is the VCS commit the binary was built from, with
	// "-modified" when the tree had uncommitted changes, or Unknown.
	Revision string
	// GoVersion is the toolchain that built the binary ("go1.27.3").
	GoVersion string
}

// Read returns the running binary's build information. version, when not
// empty, is the version set at link time (-ldflags "-X main.version=…")
// and wins over the module version.
func Read(version string) Info {
	bi, _ := debug.ReadBuildInfo()
	return FromBuildInfo(bi, version)
}

// FromBuildInfo is Read for the given build information (nil when there is
// none).
func FromBuildInfo(bi *debug.BuildInfo, version string) Info {
	info := Info{Version: version, Revision: Unknown, GoVersion: runtime.Version()}
	if bi == nil {
		if info.Version == "" {
			info.Version = "devel"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	if info.Version == "" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" || info.Version == "(devel)" {
		info.Version = "devel"
	}
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				info.Revision = s.Value
			}
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && info.Revision != Unknown {
		info.Revision += "-modified"
	}
	return info
}

// Short returns the first 12 characters of the revision (and its
// "-modified" mark), or Unknown.
func (i Info) Short() string {
	r := i.Revision
	if r == Unknown || len(r) <= 12 {
		return r
	}
	short := r[:12]
	if len(r) > 9 && r[len(r)-9:] == "-modified" {
		short += "-modified"
	}
	return short
}
