package main

import "io/fs"

// webFS is the web chat served by the embedded server in demo mode (nil
// until the web chat example is built in).
func webFS() fs.FS { return nil }
