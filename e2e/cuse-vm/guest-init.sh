#!/bin/busybox sh
# /init of the test VM's initramfs (busybox only). run.sh copies it in with
# /etc/cuse-vm.conf (REPO=the host repo path, and the paths of the host's
# make 4.4.1, cargo and rustc for the checks) and the kernel modules listed
# in /modules/order, in load order.
#
# It loads virtio/9p/overlay/fuse/cuse, builds the root "host / over 9p,
# read-only, under a tmpfs overlay", mounts the writable results share,
# chroots into it to run guest-checks.sh (guest-bench.sh when the conf says
# MODE=bench), records the exit code in the results share and powers off. Anything that goes wrong before the checks
# run is written to the console (run.sh prints its tail).

/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

. /etc/cuse-vm.conf
echo "cuse-vm init: /init started at uptime $(cut -d' ' -f1 /proc/uptime) s"

die() {
	echo "cuse-vm init: $*"
	poweroff -f
}

while read -r module; do
	insmod "/modules/$module.ko" || die "insmod $module failed"
done </modules/order

mkdir -p /lower /rw /newroot /results
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,ro hostroot /lower ||
	die "mounting the host root over 9p failed"
mount -t tmpfs -o mode=0755 tmpfs /rw || die "tmpfs failed"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	die "overlay mount failed"
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none results /results ||
	die "mounting the results share failed"

# The checks write their report into the results share; /run/cuse-vm-results
# is in the tmpfs upper layer, so the host's /run is never touched.
mkdir -p /newroot/run/cuse-vm-results /newroot/proc /newroot/sys /newroot/dev
mount --move /results /newroot/run/cuse-vm-results
mount --move /proc /newroot/proc
mount --move /sys /newroot/sys
mount --move /dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t tmpfs tmpfs /newroot/tmp
# The repo has a share of its own, mounted at its host path last: it may live
# anywhere on the host, /tmp included (hidden above by the guest's own tmpfs).
mkdir -p "/newroot$REPO"
mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,ro repo "/newroot$REPO" ||
	die "mounting the repo share failed"

# The checks read the host's tool paths from it (MAKE441, CARGO, RUSTC).
cp /etc/cuse-vm.conf /newroot/run/cuse-vm.conf

# MODE=bench (run.sh's CUSE_VM_MODE) runs `pnpm bench cuse`'s rounds instead.
script=guest-checks.sh
if [ "${MODE:-checks}" = bench ]; then script=guest-bench.sh; fi
echo "cuse-vm init: running the checks ($script) at uptime $(cut -d' ' -f1 /newroot/proc/uptime) s"
chroot /newroot /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 /bin/bash "$REPO/e2e/cuse-vm/$script" "$REPO" /run/cuse-vm-results
code=$?
echo "$code" >/newroot/run/cuse-vm-results/exit-code
sync
echo "cuse-vm init: checks exited with $code at uptime $(cut -d' ' -f1 /newroot/proc/uptime) s"
poweroff -f
