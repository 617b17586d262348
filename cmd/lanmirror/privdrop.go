package main

// dropPrivileges switches to the configured user and group after every
// listener is bound. The rsync daemon's uid/gid settings are applied here
// once for the whole process (privileges.go).
func (s *server) dropPrivileges() error {
	return s.dropRsyncPrivileges()
}
