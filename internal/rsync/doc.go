// Package rsync and its subpackages implement the server (sender) side of the
// rsync protocol, versions 27 to 31, for stock rsync 3.x clients, and the
// daemon that speaks the @RSYNCD handshake in front of it.
package rsync
