// Package soak runs crier for a bounded time under a mixed load and faults
// and fails when it leaks: room pings and chat replies, JetStream pushes
// that must all arrive, connections cut and resumed, kicks, a server-side
// crash of every session, and hostile input (a deeply nested stanza, a
// stanza of about 1 MiB, invalid UTF-8, a presence flood). Every few
// seconds the test samples go_goroutines, go_memstats_heap_inuse_bytes and
// process_resident_memory_bytes from crier's /metrics, logs them as a
// table, draws them into a PNG, and compares the later samples to the
// earlier ones (see TestSoak).
//
// The test is behind the build tag soak, so that the module's fast suite
// does not pay for it:
//
//	go test -tags soak -count=1 ./test/soak/                 # 60 s
//	go test -tags soak -count=1 -timeout 30m ./test/soak/ -soak=10m -soak.out=/tmp/soak
package soak
