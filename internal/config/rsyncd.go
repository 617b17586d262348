package config

import "time"

// Rsyncd is the rsync daemon's configuration: the global section of an
// rsyncd.conf and its modules.
type Rsyncd struct {
	// File is the name the configuration was read from (for messages).
	File string
	// Global parameters.
	Port     int    // "port"; 0 means unset
	Address  string // "address"
	PIDFile  string // "pid file"
	MOTDFile string // "motd file"
	// MaxConnsPerClient is "max connections per client", a lanmirror
	// extension (stock rsyncd has no such parameter): connections one
	// client address may hold at once; 0: no limit.
	MaxConnsPerClient int
	// Modules in file order.
	Modules []Module
	// Warnings collects unknown or unsupported parameters, with file:line.
	Warnings []string
}

// Module is one [module] section (global values already applied as defaults).
type Module struct {
	Name           string
	Path           string
	Comment        string
	Exclude        []string // server-side exclude patterns
	HostsAllow     []string // acl rule syntax
	HostsDeny      []string
	MaxConnections int // 0: unlimited; negative: module disabled
	ReadOnly       bool
	UseChroot      bool
	UID            string
	GID            string
	Timeout        time.Duration // 0: none
	List           bool          // shown in the module list
}

// Module returns the module called name, or nil.
func (c *Rsyncd) Module(name string) *Module {
	for i := range c.Modules {
		if c.Modules[i].Name == name {
			return &c.Modules[i]
		}
	}
	return nil
}
