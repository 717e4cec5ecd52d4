#!/bin/busybox sh
# /init of the initramfs that `cargo xtask vm-test` boots under QEMU (see xtask/src/vm.rs).
# It prepares what the agent needs (proc, sysfs, cgroup2, bpffs, tracefs, loopback),
# runs every integration-test binary in /iocmon/tests with IOCMON_BIN set, prints one
# parseable line per binary on the serial console, and powers the VM off.
# The VM has no network device: the tests only use loopback.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# No tmpfs on /tmp: the initramfs is already writable, and a checkout under /tmp (a CI
# clone, say) has its test clients at their build paths there, which a mount would hide.
chmod 1777 /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
ip link set lo up
hostname iocmon-vm
echo 1 > /proc/sys/kernel/printk 2>/dev/null

echo "IOCMON-VM-KERNEL release=$(uname -r) machine=$(uname -m) btf=$(test -e /sys/kernel/btf/vmlinux && echo yes || echo no)"
export IOCMON_BIN=/iocmon/iocmon
export RUST_BACKTRACE=1
export HOME=/root
cd /tmp
for test in /iocmon/tests/*; do
    name=${test##*/}
    start=$(date +%s)
    echo "IOCMON-VM-BEGIN test=$name"
    # One test at a time: under emulation, parallel agents starve timing-sensitive tests.
    # The rsyslog forwarder test needs rsyslogd, which this initramfs does not carry; it
    # runs on the host (cargo xtask test), where the kernel is not what it exercises.
    "$test" --test-threads=1 --skip rsyslog_gets_every_cef_event_once 2>&1
    rc=$?
    end=$(date +%s)
    echo "IOCMON-VM-RESULT test=$name rc=$rc secs=$((end - start))"
done
echo "IOCMON-VM-DONE"
sync
poweroff -f
