# Copyright 2026 lanmirror authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit acct-user

DESCRIPTION="User for net-misc/lanmirror"
ACCT_USER_ID=-1
ACCT_USER_HOME=/var/cache/lanmirror
ACCT_USER_GROUPS=( lanmirror )

acct-user_add_deps
