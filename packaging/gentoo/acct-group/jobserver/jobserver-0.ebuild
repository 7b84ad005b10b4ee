# Copyright 2025 steve contributors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit acct-group

DESCRIPTION="Users who may take job tokens from the steve jobserver (/dev/steve)"
# Overlays allocate dynamically (-1); ::gentoo would need a fixed id.
ACCT_GROUP_ID=-1
