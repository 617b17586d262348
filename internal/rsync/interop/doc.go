// Package interop holds the rsync interoperability suite: tests that start
// lanmirror (as a built binary) and, as a reference, a stock `rsync
// --daemon` on loopback, generate Gentoo-like trees with internal/testtree,
// run the stock rsync client against both and compare the results byte for
// byte (names, types, content, modes, mtimes, symlink targets) or, for
// listings, line for line with stock rsyncd's. The package has no code of
// its own outside its tests.
//
// The tests need the stock rsync binary (they skip without it). Settings:
//
//   - LANMIRROR_INTEROP_SERVERS=lanmirror (or rsyncd) runs the suite
//     against one server only; the default is both, so that a test that
//     fails against stock rsyncd shows a wrong test, and one that fails
//     only against lanmirror shows a lanmirror bug.
//   - LANMIRROR_INTEROP_TMP=DIR puts the trees there; the default is
//     /dev/shm when it has room (file creation on a disk is much slower).
//   - -parallel defaults to 4 for this package: the tests mostly wait.
package interop
