// Package version holds the build's version, stamped by the Makefile with -ldflags -X.
package version

// Version is eci's release version; Commit is the git commit it was built from.
var (
	Version = "0.1.0-dev"
	Commit  = "unknown"
)
