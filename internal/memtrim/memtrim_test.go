//go:build linux

package memtrim

import "testing"

// TestRelease: the test binary's own text is resident after it started;
// Release advises its mappings and the file-backed resident set shrinks.
func TestRelease(t *testing.T) {
	st, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", st)
	if st.Mappings == 0 {
		t.Fatal("no mapping of the executable was advised")
	}
	if st.FileBefore == 0 || st.FileAfter >= st.FileBefore {
		t.Fatalf("file-backed resident set %d -> %d bytes: nothing given back", st.FileBefore, st.FileAfter)
	}
}
