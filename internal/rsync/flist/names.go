package flist

import (
	"os/user"
	"strconv"
	"sync"
)

// idNames memoizes user and group name lookups (the system databases
// are read once per id).
var idNames sync.Map // key: "u123" / "g123" -> string

func lookupName(kind byte, id uint32, look func(string) (string, error)) string {
	key := string(kind) + strconv.FormatUint(uint64(id), 10)
	if v, ok := idNames.Load(key); ok {
		return v.(string)
	}
	n, err := look(strconv.FormatUint(uint64(id), 10))
	if err != nil {
		n = ""
	}
	idNames.Store(key, n)
	return n
}

// UserName returns the login name of uid, or "" when it has none; for
// EncodeOptions.UserName.
func UserName(uid uint32) string {
	return lookupName('u', uid, func(s string) (string, error) {
		u, err := user.LookupId(s)
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

// GroupName returns the name of gid, or "" when it has none; for
// EncodeOptions.GroupName.
func GroupName(gid uint32) string {
	return lookupName('g', gid, func(s string) (string, error) {
		g, err := user.LookupGroupId(s)
		if err != nil {
			return "", err
		}
		return g.Name, nil
	})
}
