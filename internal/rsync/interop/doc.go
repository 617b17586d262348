// Package interop holds the rsync interoperability suite: tests that start
// lanmirror (as a built binary) and, as a reference, a stock `rsync
// --daemon` on loopback, generate Gentoo-like trees with internal/testtree,
// run the stock rsync client against both and compare the results byte for
// byte. The package has no code of its own outside its tests.
package interop
