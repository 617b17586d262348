# Copyright 2026 lanmirror authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit git-r3 go-module systemd

DESCRIPTION="LAN mirror for Gentoo: rsync tree daemon and distfiles cache in one binary"
HOMEPAGE="https://github.com/lanmirror/lanmirror"
EGIT_REPO_URI="https://github.com/lanmirror/lanmirror.git"

# The repository has no license file yet: set this when it gets one.
LICENSE="all-rights-reserved"
SLOT="0"
IUSE="test"
RESTRICT="!test? ( test )"

DEPEND=">=dev-lang/go-1.26"
RDEPEND="
	acct-group/lanmirror
	acct-user/lanmirror
"
BDEPEND="
	test? (
		net-misc/curl
		net-misc/rsync
		net-misc/wget
	)
"

src_unpack() {
	git-r3_src_unpack
	go-module_live_vendor
}

src_compile() {
	ego build -trimpath -ldflags "-X main.version=${PV}" -o lanmirror ./cmd/lanmirror
}

src_test() {
	LANMIRROR_ALLOW_SKIP=1 ego test ./...
}

src_install() {
	dobin lanmirror
	einstalldocs

	newinitd contrib/openrc/lanmirror lanmirror
	newconfd contrib/openrc/lanmirror.confd lanmirror
	systemd_dounit contrib/systemd/lanmirror.service
	insinto /usr/lib/sysusers.d
	newins contrib/systemd/lanmirror.sysusers lanmirror.conf

	insinto /etc/logrotate.d
	newins contrib/logrotate/lanmirror lanmirror

	# The annotated settings: copied to lanmirror.toml by the admin (a
	# live file would start the daemon with its example values).
	insinto /etc/lanmirror
	newins contrib/lanmirror.toml lanmirror.toml.example

	keepdir /var/log/lanmirror
	fowners lanmirror:lanmirror /var/log/lanmirror
	fperms 0750 /var/log/lanmirror
	keepdir /var/cache/lanmirror
	fowners lanmirror:lanmirror /var/cache/lanmirror
}

pkg_postinst() {
	elog "Settings: cp /etc/lanmirror/lanmirror.toml.example /etc/lanmirror/lanmirror.toml,"
	elog "edit it and check it with: lanmirror check-config"
	elog "Service options: /etc/conf.d/lanmirror (OpenRC; LANMIRROR_OPTS also for systemd)."
	elog "Start at boot:"
	elog "  OpenRC:  rc-update add lanmirror default && rc-service lanmirror start"
	elog "  systemd: systemctl enable --now lanmirror"
	elog "Open the ports: lanmirror firewall --help"
}
