#!/usr/bin/env bash
# Start a private containerd (CRI v1) for mast under STATE_DIR, with the local
# busybox/pause images imported into namespace k8s.io, and print its socket
# path as the last line of stdout. Idempotent: when it is already running
# and answering, only the images are (re)checked.
#
# Usage: ops/containerd/start.sh STATE_DIR
# Env:   MAST_CNI_BRIDGE   bridge name              (default mast0)
#        MAST_POD_SUBNET   pod IPv4 subnet, CIDR    (default 10.88.0.0/24)
#        MAST_CNI_NETWORK  CNI network name         (default: the bridge name)
#        MAST_CGROUP_ROOT  cgroup under which the agent puts pods; stop.sh
#                          removes the empty cgroups under it (default none)
#        MAST_CONTAINERD_START_TIMEOUT  seconds to wait for the socket (default 30)
#        MAST_CONTAINERD_LOG_LEVEL      containerd log level (default info)
#        MAST_OCI_RUNTIME  crun, runc or auto (default): the OCI runtime the
#                          shim runs; auto takes crun when it is installed
#                          and can work with this host's cgroups, else runc
# Stop with: ops/containerd/stop.sh STATE_DIR [--purge]
set -euo pipefail
# runc, ip, nft and iptables live in sbin, which a non-login PATH may lack.
export PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "start.sh: $*" >&2; exit 1; }

[[ $# -eq 1 && $1 != -* ]] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }

for bin in containerd ctr runc containerd-shim-runc-v2 node nft ip; do
  command -v "$bin" >/dev/null 2>&1 || die "$bin not found; run ops/containerd/install.sh first"
done
for plugin in bridge host-local loopback; do
  [[ -x /usr/lib/cni/$plugin ]] || die "/usr/lib/cni/$plugin not found; run ops/containerd/install.sh first"
done

mkdir -p -- "$1"
STATE_DIR=$(cd -- "$1" && pwd -P)
[[ $STATE_DIR != / ]] || die "refusing to use / as STATE_DIR"
[[ $STATE_DIR != *[[:space:]\"\\]* ]] || die "STATE_DIR must not contain whitespace, quotes or backslashes: $STATE_DIR"

SOCK=$STATE_DIR/containerd.sock
CONF=$STATE_DIR/config.toml
PIDFILE=$STATE_DIR/containerd.pid
LOG=$STATE_DIR/containerd.log
SETTINGS=$STATE_DIR/mast-containerd.env
NS=k8s.io
TIMEOUT=${MAST_CONTAINERD_START_TIMEOUT:-30}
LOG_LEVEL=${MAST_CONTAINERD_LOG_LEVEL:-info}

# A unix socket path is limited to 107 bytes; containerd also listens on
# SOCK.ttrpc.
(( ${#SOCK} + 6 <= 107 )) || die "socket path too long (${#SOCK} bytes; keep STATE_DIR under ~95 bytes): $SOCK"

BRIDGE=${MAST_CNI_BRIDGE:-mast0}
SUBNET=${MAST_POD_SUBNET:-10.88.0.0/24}
NETWORK=${MAST_CNI_NETWORK:-$BRIDGE}
CGROUP_ROOT=${MAST_CGROUP_ROOT:-}
OCI_RUNTIME=${MAST_OCI_RUNTIME:-auto}
# Controllers start.sh moved out of a hybrid host's cgroup v2 hierarchy for
# crun, one per line; stop.sh moves them back when the last mast containerd
# stops. Host-wide, changed under a lock on /sys/fs/cgroup.
CGROUP_MOVED=/run/mast-cgroup-v1-moved
# nft identifiers: letters, digits and underscores here.
NAT_TABLE=mast_cni_${NETWORK//[^A-Za-z0-9_]/_}
[[ $BRIDGE =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$ ]] || die "MAST_CNI_BRIDGE must be 1-15 of [A-Za-z0-9_.-]: $BRIDGE"
[[ $NETWORK =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "MAST_CNI_NETWORK must be of [A-Za-z0-9_.-]: $NETWORK"
[[ -z $CGROUP_ROOT || ( $CGROUP_ROOT =~ ^/[A-Za-z0-9_./-]+$ && $CGROUP_ROOT != *..* ) ]] || die "MAST_CGROUP_ROOT must be an absolute cgroup path: $CGROUP_ROOT"
[[ $OCI_RUNTIME =~ ^(auto|crun|runc)$ ]] || die "MAST_OCI_RUNTIME must be auto, crun or runc: $OCI_RUNTIME"
[[ $SUBNET =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}/([89]|[12][0-9]|30)$ ]] || die "MAST_POD_SUBNET must be an IPv4 CIDR with a /8../30 prefix: $SUBNET"

ctr_() { timeout 60 ctr --address "$SOCK" "$@"; }
answers() {
  [[ -S $SOCK ]] && timeout 10 ctr --address "$SOCK" --connect-timeout 2s version >/dev/null 2>&1
}

# The pid of our containerd if it is alive (a containerd started with our config).
our_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--config $CONF " || return 1
  echo "$pid"
}

log_tail() { [[ -f $LOG ]] && tail -n 20 "$LOG" >&2; true; }

write_file() { # write_file PATH  (content on stdin), atomically
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$1"
}

# crun needs a quarter of runc's CPU per container (a C program against a Go
# binary that runs four times per pod start and re-executes itself as
# `runc init`), which at 5 pods/s is a tenth of this 2-core machine. It
# supports cgroup v1 and v2, and a hybrid layout only if the v2 hierarchy
# holds no controllers. On these VMs the only one there is hugetlb, which no
# pod limits; mounting it as a v1 hierarchy of its own takes it out of v2
# (the kernel moves a controller that no cgroup below the v2 root enables).
# True if crun can work here, after such a move if one was needed. The
# caller holds the host-wide lock (lock_host_cgroups).
cgroups_fit_crun() {
  local unified=/sys/fs/cgroup/unified c dir ctrls=()
  [[ $(stat -fc %T /sys/fs/cgroup 2>/dev/null) == tmpfs ]] || return 0 # v2 only, or v1 only
  [[ $(stat -fc %T "$unified" 2>/dev/null) == cgroup2fs ]] || return 0  # v1 only
  read -r -a ctrls <"$unified/cgroup.controllers" || true
  for c in "${ctrls[@]}"; do
    dir=/sys/fs/cgroup/$c
    [[ $c =~ ^[a-z_]+$ && ! -e $dir ]] || return 1
    mkdir "$dir" || return 1
    if ! mount -t cgroup -o "$c" cgroup "$dir" 2>/dev/null; then
      rmdir "$dir"
      return 1
    fi
    echo "$c" >>"$CGROUP_MOVED"
    echo "start.sh: mounted cgroup controller $c as a v1 hierarchy at $dir for crun (stop.sh moves it back)" >&2
  done
  read -r -a ctrls <"$unified/cgroup.controllers" || true
  (( ${#ctrls[@]} == 0 ))
}

# The lock under which start.sh and stop.sh of every STATE_DIR move cgroup
# controllers: start.sh holds it from choosing the runtime until its
# containerd runs, so a stop.sh of another STATE_DIR cannot move them back
# in between (it moves them only when no other mast containerd runs).
lock_host_cgroups() {
  exec 8</sys/fs/cgroup
  flock -w 60 8 || die "timed out waiting for the lock on /sys/fs/cgroup"
}
unlock_host_cgroups() { exec 8<&-; }

# Sets RUNTIME_BINARY, the OCI runtime's absolute path.
choose_oci_runtime() {
  local crun
  crun=$(command -v crun 2>/dev/null) || crun=
  case $OCI_RUNTIME in
    runc) RUNTIME_BINARY=$(command -v runc) ;;
    crun)
      [[ -n $crun ]] || die "MAST_OCI_RUNTIME=crun but crun is not installed (run ops/containerd/install.sh)"
      cgroups_fit_crun || die "MAST_OCI_RUNTIME=crun but crun cannot run with this host's cgroups: a hybrid layout whose v2 hierarchy holds controllers ($(cat /sys/fs/cgroup/unified/cgroup.controllers)) that could not be moved to v1 hierarchies"
      RUNTIME_BINARY=$crun ;;
    auto)
      if [[ -n $crun ]] && cgroups_fit_crun; then RUNTIME_BINARY=$crun; else RUNTIME_BINARY=$(command -v runc); fi ;;
  esac
}

write_config() {
  choose_oci_runtime
  mkdir -p "$STATE_DIR"/{root,state,cni,runc,opt,ipam,images}
  : >"$STATE_DIR/.mast-containerd" # marks the dir as ours for stop.sh --purge

  write_file "$SETTINGS" <<EOF
# Written by ops/containerd/start.sh; read by stop.sh.
BRIDGE=$BRIDGE
SUBNET=$SUBNET
NETWORK=$NETWORK
CGROUP_ROOT=$CGROUP_ROOT
RUNTIME_BINARY=$RUNTIME_BINARY
EOF

  write_file "$CONF" <<EOF
# Written by mast ops/containerd/start.sh. A private containerd for mast.
version = 2
root = "$STATE_DIR/root"
state = "$STATE_DIR/state"
# Unused snapshotters only add noise to the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "$SOCK"

[debug]
  level = "$LOG_LEVEL"

[plugins]
  # Defaults to /opt/containerd; keep it private.
  [plugins."io.containerd.internal.v1.opt"]
    path = "$STATE_DIR/opt"

  [plugins."io.containerd.grpc.v1.cri"]
    # Nothing can be pulled here: the sandbox image is imported locally.
    sandbox_image = "docker.io/local/pause:1"
    # Required on these VMs: root lacks CAP_SYS_RESOURCE, so runc cannot
    # lower a container's oom_score_adj below containerd's own.
    restrict_oom_score_adj = true
    # Pod network namespaces are mounted under our state dir, not /run/netns.
    netns_mounts_under_state_dir = true
    enable_selinux = false

    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"

      # The handler keeps the name "runc" (CRI's default); BinaryName picks
      # the OCI runtime the runc shim runs: runc or crun, same command line.
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          BinaryName = "$RUNTIME_BINARY"
          SystemdCgroup = false
          Root = "$STATE_DIR/runc"

    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$STATE_DIR/cni"
      max_conf_num = 1
EOF

  # One bridge network; host-local keeps its leases under STATE_DIR.
  write_file "$STATE_DIR/cni/10-$NETWORK.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$NETWORK",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE_DIR/ipam",
        "ranges": [[{ "subnet": "$SUBNET" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    }
  ]
}
EOF
  # Only our own conflist may be in conf_dir.
  find "$STATE_DIR/cni" -maxdepth 1 -type f ! -name "10-$NETWORK.conflist" -delete
}

# Pods' traffic leaving the pod network is masqueraded by one rule for the
# whole subnet, in a table of our own, instead of the bridge plugin's ipMasq
# (a chain and several iptables runs per pod when it starts and again when
# it stops: about 40 ms of CPU a pod, and empty CNI-* chains left behind).
write_masquerade() {
  nft -f - <<EOF
add table ip $NAT_TABLE
flush table ip $NAT_TABLE
add chain ip $NAT_TABLE postrouting { type nat hook postrouting priority srcnat; policy accept; }
add rule ip $NAT_TABLE postrouting ip saddr $SUBNET ip daddr != $SUBNET masquerade
EOF
}

start_containerd() {
  local pid i
  if answers; then
    die "something else already answers on $SOCK (no live containerd from $PIDFILE); run stop.sh $STATE_DIR"
  fi
  rm -f "$SOCK" "$SOCK.ttrpc" "$PIDFILE" "$STATE_DIR/stopped"
  # Recorded once, before the bridge plugin changes them, so that stop.sh
  # can tell whether the 'ip nat' table was ours and restore ip_forward.
  if [[ ! -f $STATE_DIR/host-before ]]; then
    {
      if nft list table ip nat >/dev/null 2>&1; then echo "NAT_TABLE=yes"; else echo "NAT_TABLE=no"; fi
      echo "IP_FORWARD=$(cat /proc/sys/net/ipv4/ip_forward)"
    } >"$STATE_DIR/host-before"
  fi
  # Own session so it outlives the caller's process group; the pid is the
  # one that execs containerd.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'echo $$ >"$1"; exec containerd --config "$2"' _ "$PIDFILE" "$CONF" \
    </dev/null >>"$LOG" 2>&1 8<&- 9>&- &
  for ((i = 0; i < TIMEOUT * 10; i++)); do
    if pid=$(our_pid) && answers; then
      return 0
    fi
    if [[ -s $PIDFILE ]] && ! kill -0 "$(<"$PIDFILE")" 2>/dev/null; then
      echo "start.sh: containerd exited; last lines of $LOG:" >&2
      log_tail
      exit 1
    fi
    sleep 0.1
  done
  echo "start.sh: containerd did not answer on $SOCK within ${TIMEOUT}s; last lines of $LOG:" >&2
  log_tail
  exit 1
}

wait_cri() {
  local i status
  for ((i = 0; i < TIMEOUT * 10; i++)); do
    status=$(ctr_ plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }')
    case $status in
      ok) return 0 ;;
      error)
        echo "start.sh: containerd's CRI plugin failed to load; last lines of $LOG:" >&2
        log_tail
        exit 1 ;;
    esac
    sleep 0.1
  done
  die "CRI plugin not ready within ${TIMEOUT}s (see $LOG)"
}

ensure_images() {
  local built name digest tar have
  built=$(node "$HERE/build-images.mjs" "$STATE_DIR/images") || die "build-images.mjs failed"
  have=$(ctr_ -n "$NS" images ls 2>/dev/null | awk 'NR > 1 { print $1, $3 }') || have=
  while read -r name digest tar; do
    [[ -n $name ]] || continue
    if grep -qxF -- "$name $digest" <<<"$have"; then
      continue
    fi
    ctr_ -n "$NS" images import "$tar" >>"$LOG" 2>&1 || {
      echo "start.sh: importing $tar failed; last lines of $LOG:" >&2
      log_tail
      exit 1
    }
  done <<<"$built"
}

# One start.sh or stop.sh at a time per STATE_DIR.
exec 9>"$STATE_DIR/.lock"
flock -w 120 9 || die "timed out waiting for the lock on $STATE_DIR/.lock"

if our_pid >/dev/null && answers; then
  want="bridge $BRIDGE, subnet $SUBNET, network $NETWORK"
  have="bridge $(sed -n 's/^BRIDGE=//p' "$SETTINGS" 2>/dev/null), subnet $(sed -n 's/^SUBNET=//p' "$SETTINGS" 2>/dev/null), network $(sed -n 's/^NETWORK=//p' "$SETTINGS" 2>/dev/null)"
  [[ $want == "$have" ]] ||
    echo "start.sh: already running with $have; not $want (stop it to change them)" >&2
else
  if pid=$(our_pid); then
    # Alive but not answering: give it the usual time, then give up.
    for ((i = 0; i < TIMEOUT * 10; i++)); do
      answers && break
      sleep 0.1
    done
    answers || die "containerd (pid $pid) is running but does not answer on $SOCK; run stop.sh $STATE_DIR"
  else
    lock_host_cgroups
    write_config
    write_masquerade
    start_containerd
    unlock_host_cgroups
  fi
fi
wait_cri
ensure_images
echo "$SOCK"
