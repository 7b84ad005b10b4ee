# Copyright 2025 steve contributors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit acct-user

DESCRIPTION="User the steve jobserver daemon drops to (steve-daemon --user steve)"
ACCT_USER_ID=-1
# Primary group steve (may open /dev/cuse), and jobserver (owns /dev/steve).
ACCT_USER_GROUPS=( steve jobserver )

acct-user_add_deps
