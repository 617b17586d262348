# Copyright 2026 lanmirror authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit acct-group

DESCRIPTION="Group for net-misc/lanmirror"
ACCT_GROUP_ID=-1
