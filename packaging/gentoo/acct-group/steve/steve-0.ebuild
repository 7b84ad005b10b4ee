# Copyright 2025 steve contributors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit acct-group

DESCRIPTION="Group of the steve jobserver daemon (may open /dev/cuse)"
ACCT_GROUP_ID=-1
