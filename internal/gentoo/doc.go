// Package gentoo reads and writes the Gentoo formats lanmirror needs: the
// GLEP 75 distfiles mirror layout (layout.conf, filename hashing), GLEP 74
// Manifests and the DIST index built from them, timestamps, and the binary
// package Packages index.
package gentoo
