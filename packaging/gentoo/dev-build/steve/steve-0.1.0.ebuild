# Copyright 2025 steve contributors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit linux-info systemd tmpfiles udev

DESCRIPTION="System-wide GNU make jobserver: one pool of job tokens for every build"
HOMEPAGE="https://github.com/steve-ts/steve"
# steve's npm tarballs (`pnpm tarballs` in a clone: pack/*.tgz). Each one
# installs offline: it bundles steve's own packages, which are not on the npm
# registry, and its registry dependencies. They are built locally, hence
# RESTRICT=fetch (pkg_nofetch says how).
SRC_URI="
	steve-daemon-${PV}.tgz
	emerge-shim-${PV}.tgz
	steve-pytest-bridge-${PV}.tgz
"
S="${WORKDIR}"

# steve: GPL-2+; the bundled npm dependencies: MIT, ISC, Apache-2.0.
LICENSE="GPL-2+ Apache-2.0 ISC MIT"
SLOT="0"
# The tarballs carry the native addons prebuilt for linux-x64 (glibc >= 2.36).
KEYWORDS="~amd64"
RESTRICT="fetch strip"

RDEPEND="
	acct-group/jobserver
	acct-group/steve
	acct-user/steve
	>=net-libs/nodejs-20
	sys-fs/fuse:3
"
BDEPEND=">=net-libs/nodejs-20[npm]"

# The CUSE front (/dev/steve) needs CUSE; without it steve serves a FUSE file
# (STEVE_FRONT="fuse" in /etc/conf.d/steve, or steve-fuse.service).
CONFIG_CHECK="~FUSE_FS ~CUSE"
WARNING_CUSE="CUSE is needed for the /dev/steve front; without it set STEVE_FRONT=\"fuse\" in /etc/conf.d/steve (systemd: enable steve-fuse.service)"

pkg_nofetch() {
	einfo "steve's npm packages are not on the registry: build the tarballs in a"
	einfo "clone of ${HOMEPAGE} (Node >= 20, pnpm):"
	einfo "  pnpm install && pnpm build && pnpm tarballs"
	einfo "then copy these files from its pack/ directory to ${DISTDIR}:"
	local file
	for file in ${A}; do
		einfo "  ${file}"
	done
	einfo "and run: ebuild ${EBUILD} manifest"
}

src_unpack() {
	# npm installs straight from the tarballs in src_install.
	:
}

src_install() {
	local tarballs=() file
	for file in ${A}; do
		tarballs+=( "${DISTDIR}/${file}" )
	done
	# npm lays the packages out in a scratch prefix (offline: every tarball
	# bundles what it needs; no install scripts: the addons are prebuilt);
	# they move to /usr/$(get_libdir)/node_modules from there.
	local prefix="${T}/npm-prefix"
	npm install --global --offline --ignore-scripts --no-audit --no-fund \
		--no-update-notifier --cache "${T}/npm-cache" --prefix "${prefix}" \
		"${tarballs[@]}" || die "npm install failed"

	local moddir="/usr/$(get_libdir)/node_modules"
	dodir "${moddir}"
	cp -a "${prefix}/lib/node_modules/." "${ED}${moddir}/" || die
	local bin target
	for bin in "${prefix}"/bin/*; do
		target=$(readlink "${bin}") || die
		[[ ${target} == ../lib/node_modules/* ]] || die "unexpected npm bin link ${bin} -> ${target}"
		dosym "../$(get_libdir)/${target#../lib/}" "/usr/bin/${bin##*/}"
	done

	systemd_dounit "${FILESDIR}"/steve.service "${FILESDIR}"/steve-fuse.service
	newinitd "${FILESDIR}"/steve.initd steve
	newconfd "${FILESDIR}"/steve.confd steve
	udev_dorules "${FILESDIR}"/60-steve.rules
	newtmpfiles "${FILESDIR}"/steve.tmpfiles steve.conf
	insinto /etc/sandbox.d
	doins "${FILESDIR}"/60steve
	docinto examples
	dodoc "${FILESDIR}"/metrics.conf
}

pkg_postinst() {
	udev_reload
	tmpfiles_process steve.conf

	elog "Start the jobserver:"
	elog "  OpenRC:  rc-update add steve default && rc-service steve start"
	elog "  systemd: systemctl enable --now steve (steve-fuse without CUSE)"
	elog "Settings (pool size, limits): /etc/conf.d/steve."
	elog "Builds run as the portage user, which must be in group jobserver:"
	elog "  ACCT_USER_PORTAGE_GROUPS_ADD=\"jobserver\" in make.conf, then emerge -1 acct-user/portage"
	elog "Then these lines in /etc/portage/make.conf (emerge-shim --print-make-conf"
	elog "prints them for this machine, with --jobs=<pool size>; with the FUSE front"
	elog "the pool is /run/steve/jobserver):"
	elog "  MAKEFLAGS=\"--jobserver-auth=fifo:/dev/steve\""
	elog "  EPYTEST_FLAGS=\"-p steve_jobserver\""
	elog "  FEATURES=\"\${FEATURES} jobserver-token\""
	elog "  EMERGE_DEFAULT_OPTS=\"\${EMERGE_DEFAULT_OPTS} --jobs=$(nproc)\""
	elog "(no -jN in MAKEOPTS: emake drops MAKEOPTS once MAKEFLAGS is set; EPYTEST_FLAGS"
	elog "needs the pytest plugin importable: see steve-pytest env)"
}

pkg_postrm() {
	udev_reload
}
