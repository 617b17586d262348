package main

// dropPrivileges switches to the configured user and group after every
// listener is bound. The rsync daemon's uid/gid settings are applied here
// once for the whole process (see privileges.go when present).
func dropPrivileges(env *serveEnv) error {
	for _, f := range privilegeDroppers {
		if err := f(env); err != nil {
			return err
		}
	}
	return nil
}

// privilegeDroppers are registered by components that know a target user.
var privilegeDroppers []func(env *serveEnv) error
