//go:build !unix

package dirlock

import "os"

// lock is a no-op where flock does not exist.
func lock(*os.File, bool) (bool, error) { return false, nil }
