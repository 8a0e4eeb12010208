// Package all imports every plugin, one blank import a file, so that adding
// a plugin creates files and edits none.
package all
