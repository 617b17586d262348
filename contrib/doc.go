// Package contrib holds no Go code: its directories are the files to run
// lanmirror as a service (openrc/, systemd/, logrotate/) and a Gentoo
// ebuild (gentoo/). The tests here check them with the real tools:
// openrc-run starts and stops the OpenRC script, systemd-analyze verifies
// the unit and its command line is run, logrotate rotates a live log.
package contrib
