package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	rev := "2a61d5158f11ac2ee1eabc3331f2bff8b615a6ba"
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	for _, tc := range []struct {
		name    string
		bi      *debug.BuildInfo
		version string
		want    Info
		short   string
	}{
		{"no build info", nil, "", Info{"devel", Unknown, runtime.Version()}, Unknown},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			"", Info{"devel", rev, "go1.27.3"}, rev[:12]},
		{"dirty checkout", &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")},
			"", Info{"devel", rev + "-modified", "go1.27.3"}, rev[:12] + "-modified"},
		{"module version", &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v1.2.0"}},
			"", Info{"v1.2.0", Unknown, "go1.27.3"}, Unknown},
		{"link-time version wins", &debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v1.2.0"}, Settings: vcs("false")},
			"v1.3.0-rc1", Info{"v1.3.0-rc1", rev, "go1.27.3"}, rev[:12]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := FromBuildInfo(tc.bi, tc.version)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if s := got.Short(); s != tc.short {
				t.Fatalf("Short() = %q, want %q", s, tc.short)
			}
		})
	}
}

func TestReadRunningBinary(t *testing.T) {
	got := Read("")
	if got.GoVersion != runtime.Version() || got.Version == "" || got.Revision == "" {
		t.Fatalf("Read: %+v (running %s)", got, runtime.Version())
	}
}
