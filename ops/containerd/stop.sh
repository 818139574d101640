#!/usr/bin/env bash
# Stop the private containerd that start.sh started under STATE_DIR and undo
# what it and its pods left on the host: pod containers and shims,
# containerd itself, mounts under STATE_DIR, the CNI bridge, the pod
# subnet's masquerade table (and the NAT rules of the bridge plugin's ipMasq,
# which earlier versions of start.sh used), host-local leases, libcni's result cache, empty
# cgroups of the containers, net.ipv4.ip_forward if it was off before, and
# cgroup controllers start.sh moved to v1 hierarchies for crun once no other
# mast containerd runs.
# With --purge, STATE_DIR is removed as well.
#
# Usage: ops/containerd/stop.sh STATE_DIR [--purge]
# Safe to run when some or all of this is already gone (exits 0).
# Env (only used when STATE_DIR has no mast-containerd.env from start.sh):
#   MAST_CNI_BRIDGE (default mast0), MAST_CNI_NETWORK (default: the bridge name),
#   MAST_CGROUP_ROOT (default none: remove empty cgroups under it, e.g. /mast)
#   MAST_CONTAINERD_STOP_TIMEOUT  seconds before SIGKILL (default 10)
set -euo pipefail
# runc, ip, nft and iptables live in sbin, which a non-login PATH may lack.
export PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() { echo "usage: $0 STATE_DIR [--purge]" >&2; exit 2; }
warn() { echo "stop.sh: $*" >&2; }

PURGE=0
STATE_ARG=
for a in "$@"; do
  case $a in
    --purge) PURGE=1 ;;
    -*) usage ;;
    *) [[ -z $STATE_ARG ]] || usage; STATE_ARG=$a ;;
  esac
done
[[ -n $STATE_ARG ]] || usage

STATE_DIR=$(realpath -m -- "$STATE_ARG")
[[ $STATE_DIR != / ]] || { warn "refusing to use / as STATE_DIR"; exit 1; }

SOCK=$STATE_DIR/containerd.sock
CONF=$STATE_DIR/config.toml
PIDFILE=$STATE_DIR/containerd.pid
SETTINGS=$STATE_DIR/mast-containerd.env
BEFORE=$STATE_DIR/host-before
TASKS=$STATE_DIR/state/io.containerd.runtime.v2.task
STOP_TIMEOUT=${MAST_CONTAINERD_STOP_TIMEOUT:-10}

# Settings recorded by start.sh win over the environment.
setting() { # setting FILE KEY DEFAULT
  local v=
  [[ -f $1 ]] && v=$(sed -n "s/^$2=//p" "$1" | tail -n 1)
  echo "${v:-$3}"
}
BRIDGE=$(setting "$SETTINGS" BRIDGE "${MAST_CNI_BRIDGE:-mast0}")
NETWORK=$(setting "$SETTINGS" NETWORK "${MAST_CNI_NETWORK:-$BRIDGE}")
CGROUP_ROOT=$(setting "$SETTINGS" CGROUP_ROOT "${MAST_CGROUP_ROOT:-}")
CGROUP_MOVED=/run/mast-cgroup-v1-moved # see start.sh

answers() {
  [[ -S $SOCK ]] && timeout 10 ctr --address "$SOCK" --connect-timeout 2s version >/dev/null 2>&1
}
ctr_() { timeout 30 ctr --address "$SOCK" --connect-timeout 2s "$@"; }

cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# Pids of processes whose command line (args joined by spaces) contains the
# fixed string $1 followed by a space or the end.
pids_with() {
  local re
  re=$(printf '%s' "$1" | sed 's/[][\\.*^$+?(){}|]/\\&/g')
  pgrep -f -- "$re( |\$)" || true
}

# True if any of the pids is alive and not a zombie.
alive() {
  local p st
  for p in "$@"; do
    st=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null) || continue
    [[ -n $st && $st != Z && $st != X ]] && return 0
  done
  return 1
}

# kill_wait SECONDS PID...: SIGTERM, wait, then SIGKILL.
kill_wait() {
  local secs=$1 i
  shift
  (( $# )) || return 0
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    alive "$@" || return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$@" || return 0
    sleep 0.1
  done
  warn "still alive after SIGKILL: $*"
}

# True if another mast containerd (a config.toml beside a .mast-containerd
# marker) is running.
other_mast_containerd() {
  local p conf
  for p in $(pgrep -f -- "containerd --config " || true); do
    conf=$(cmdline "$p" | sed -n 's/.*containerd --config \([^ ]*\).*/\1/p')
    [[ -n $conf && $conf != "$CONF" && -f $(dirname "$conf")/.mast-containerd ]] && return 0
  done
  return 1
}

# How many cgroups the kernel counts in controller $1's hierarchy: live and
# removed-but-lingering ones, the root included (/proc/cgroups).
hierarchy_cgroups() { awk -v c="$1" '$1 == c { print $3 }' /proc/cgroups; }

# One start.sh or stop.sh at a time per STATE_DIR.
if [[ -d $STATE_DIR ]]; then
  exec 9>"$STATE_DIR/.lock"
  flock -w 120 9 || { warn "timed out waiting for the lock on $STATE_DIR/.lock"; exit 1; }
fi

# ---- 0. what to clean up later, read before anything is deleted -------------

CGROUPS=()
SHIM_SOCKETS=()
IDS=()
if [[ -d $TASKS ]]; then
  for bundle in "$TASKS"/*/*/; do
    [[ -d $bundle ]] || continue
    IDS+=("$(basename "$bundle")")
    if [[ -f $bundle/config.json ]]; then
      cg=$(grep -o '"cgroupsPath":"[^"]*"' "$bundle/config.json" | head -n 1 | cut -d'"' -f4) || cg=
      [[ -n $cg ]] && CGROUPS+=("$cg")
    fi
    if [[ -f $bundle/address ]]; then
      addr=$(<"$bundle/address")
      addr=${addr#unix://}
      [[ $addr == /run/containerd/s/* ]] && SHIM_SOCKETS+=("$addr")
    fi
  done
fi
NAMESPACES=(k8s.io default)

# ---- 1. pods and containers, through containerd while it answers ------------

ANSWERED=0
if answers; then
  ANSWERED=1
  mapfile -t found < <(ctr_ namespaces ls -q 2>/dev/null || true)
  for ns in "${found[@]}"; do
    [[ -n $ns && $ns != k8s.io && $ns != default ]] && NAMESPACES+=("$ns")
  done
  for ns in "${NAMESPACES[@]}"; do
    mapfile -t tasks < <(ctr_ -n "$ns" tasks ls -q 2>/dev/null || true)
    for id in "${tasks[@]}"; do
      [[ -n $id ]] && { ctr_ -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true; }
    done
    for id in "${tasks[@]}"; do
      [[ -n $id ]] && { ctr_ -n "$ns" tasks delete -f "$id" >/dev/null 2>&1 || true; }
    done
    mapfile -t ctrs < <(ctr_ -n "$ns" containers ls -q 2>/dev/null || true)
    for id in "${ctrs[@]}"; do
      [[ -n $id ]] && { ctr_ -n "$ns" containers delete "$id" >/dev/null 2>&1 || true; }
    done
  done
fi

# ---- 2. containerd itself ---------------------------------------------------

mapfile -t daemons < <(pids_with "containerd --config $CONF")
if [[ -f $PIDFILE ]]; then
  pid=$(<"$PIDFILE")
  if [[ $pid =~ ^[0-9]+$ ]] && [[ $(cmdline "$pid") == *"--config $CONF "* ]]; then
    [[ " ${daemons[*]} " == *" $pid "* ]] || daemons+=("$pid")
  fi
fi
if (( ${#daemons[@]} )); then
  kill_wait "$STOP_TIMEOUT" "${daemons[@]}"
fi
rm -f "$PIDFILE" "$SOCK" "$SOCK.ttrpc"

# ---- 3. whatever containerd left running: containers, then shims -----------

# Containers in the OCI runtime's private root (CRI: runc's state.json or
# crun's status per container), or in runc's default root when their bundle
# is ours (plain `ctr run`).
for root in "$STATE_DIR"/runc/*/ /run/containerd/runc/*/; do
  [[ -d $root ]] || continue
  for dir in "$root"*/; do
    id=$(basename "$dir")
    if [[ -f $dir/state.json ]]; then
      if [[ $root != "$STATE_DIR"/* ]] && ! grep -qF "\"bundle=$TASKS/" "$dir/state.json"; then
        continue
      fi
      runc --root "${root%/}" delete --force "$id" >/dev/null 2>&1 || true
    elif [[ -f $dir/status && $root == "$STATE_DIR"/* ]] && command -v crun >/dev/null 2>&1; then
      crun --root "${root%/}" delete --force "$id" >/dev/null 2>&1 || true
    fi
  done
done
# Shims of our containerd, and anything they still parent.
mapfile -t shims < <(pids_with "-address $SOCK")
if (( ${#shims[@]} )); then
  kids=()
  for s in "${shims[@]}"; do
    while read -r k; do [[ -n $k ]] && kids+=("$k"); done < <(pgrep -P "$s" 2>/dev/null || true)
  done
  (( ${#kids[@]} )) && { kill -KILL "${kids[@]}" 2>/dev/null || true; }
  kill_wait 0 "${shims[@]}" # their containers are gone; nothing to wait for
fi
# Last resort for container processes whose runc state is gone: whatever is
# still in our containers' cgroups.
mapfile -t cgroot < <(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo)
for _ in 1 2 3; do
  left=()
  for cg in "${CGROUPS[@]}"; do
    [[ $cg == /* && $cg != *..* ]] || continue
    for r in "${cgroot[@]}"; do
      [[ -f $r$cg/cgroup.procs ]] || continue
      while read -r p; do [[ -n $p ]] && left+=("$p"); done <"$r$cg/cgroup.procs"
    done
  done
  (( ${#left[@]} )) || break
  kill -KILL "${left[@]}" 2>/dev/null || true
  sleep 0.2
done
for s in "${SHIM_SOCKETS[@]}"; do rm -f "$s"; done
# FIFOs that `ctr run` made for our containers' stdio.
for d in /run/containerd/fifo/*/; do
  [[ -d $d ]] || continue
  for f in "$d"*; do
    n=$(basename "$f")
    [[ " ${IDS[*]} " == *" ${n%-std*} "* ]] || continue 2
  done
  rm -rf -- "$d"
done

# ---- 4. mounts under STATE_DIR (overlay rootfs, shm, netns) ------------------

mounts_under() {
  # Mount points are field 5 of mountinfo, octal-escaped; STATE_DIR has no
  # characters that need escaping (start.sh refuses them).
  MAST_STATE_DIR=$STATE_DIR awk '
    { d = ENVIRON["MAST_STATE_DIR"] }
    $5 == d || index($5, d "/") == 1 { print length($5), $5 }' /proc/self/mountinfo |
    sort -rn | cut -d' ' -f2-
}
for _ in 1 2 3 4 5; do
  mapfile -t mnts < <(mounts_under)
  (( ${#mnts[@]} )) || break
  for m in "${mnts[@]}"; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
done
mapfile -t mnts < <(mounts_under)
if (( ${#mnts[@]} )); then
  warn "still mounted under $STATE_DIR: ${mnts[*]}"
else
  # Runtime state, like /run/containerd after a reboot: nothing runs any
  # more, so containerd starts afresh from its metadata (root/) next time.
  rm -rf --one-file-system -- "$STATE_DIR/state" "$STATE_DIR/runc"
  # containerd did not answer and had not been stopped by us: its metadata
  # still lists containers that no longer exist (CRI would show them as dead
  # pods holding their names). Start from an empty root instead; start.sh
  # re-imports the images.
  if (( ! ANSWERED )) && [[ -f $STATE_DIR/root/io.containerd.metadata.v1.bolt/meta.db && ! -f $STATE_DIR/stopped ]]; then
    warn "containerd was not answering; resetting $STATE_DIR/root"
    rm -rf --one-file-system -- "$STATE_DIR/root"
  fi
  if [[ -d $STATE_DIR ]]; then : >"$STATE_DIR/stopped"; fi
fi

# ---- 5. cgroups of our containers (only empty ones can go) -------------------

for ns in "${NAMESPACES[@]}"; do CGROUPS+=("/$ns"); done # `ctr run` uses /<namespace>/<id>
# Pod-level cgroups (the agent's cgroup_parent) outlive their containers; with
# MAST_CGROUP_ROOT every empty cgroup under it goes too. Memory still charged
# to them (and to their removed containers' cgroups) is reclaimed first, once
# written back: otherwise the kernel keeps each as a "dying" memory cgroup,
# and a few hundred of those slow the whole machine (see
# services/agent/pod-cgroups.ts, which does the same for each deleted pod).
if [[ $CGROUP_ROOT == /?* && $CGROUP_ROOT != *..* ]]; then
  synced=0
  for r in "${cgroot[@]}"; do
    if [[ -d $r$CGROUP_ROOT ]]; then
      if [[ -f $r$CGROUP_ROOT/memory.force_empty ]]; then
        (( synced )) || { sync; synced=1; }
        while read -r d; do
          procs=$(cat "$d/cgroup.procs" 2>/dev/null) || continue
          if [[ -z $procs ]]; then echo 0 >"$d/memory.force_empty" 2>/dev/null || true; fi
        done < <(find "$r$CGROUP_ROOT" -depth -type d)
      fi
      find "$r$CGROUP_ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    fi
  done
  CGROUPS+=("$CGROUP_ROOT")
fi
for cg in "${CGROUPS[@]}"; do
  [[ $cg == /* && $cg != *..* ]] || continue
  for r in "${cgroot[@]}"; do
    d=$r$cg
    while [[ $d != "$r" && $d == "$r"/* ]]; do
      [[ -d $d ]] && { rmdir "$d" 2>/dev/null || { sleep 0.2; rmdir "$d" 2>/dev/null; } || break; }
      d=$(dirname "$d")
    done
  done
done

# ---- 6. network: NAT rules, bridge, IPAM and libcni caches -------------------

# The bridge plugin runs `iptables`; with the nf_tables backend, listing a
# table that does not exist is skipped so as not to create it.
if ! iptables --version 2>/dev/null | grep -q nf_tables || nft list table ip nat >/dev/null 2>&1; then
  # Rules the bridge plugin tagged with our network's name: POSTROUTING jumps
  # to per-pod CNI-* chains, each holding the pod's ACCEPT/MASQUERADE rules.
  export MAST_TAG_L="/* name: \"$NETWORK\" id: "
  export MAST_TAG_S="--comment \"name: \\\"$NETWORK\\\" id: "
  chains=()
  while read -r n c; do
    [[ -n $n ]] || continue
    [[ $c == CNI-* ]] && chains+=("$c")
    iptables -w 5 -t nat -D POSTROUTING "$n" 2>/dev/null || true
  done < <(iptables -w 5 -t nat -L POSTROUTING -n --line-numbers 2>/dev/null |
    awk 'index($0, ENVIRON["MAST_TAG_L"]) { print $1, $2 }' | sort -rn)
  # CNI-* chains whose rules carry our tag (also catches unreferenced ones).
  while read -r c; do
    [[ -n $c ]] && chains+=("$c")
  done < <(iptables -w 5 -t nat -S 2>/dev/null |
    awk '$1 == "-A" && $2 ~ /^CNI-/ && index($0, ENVIRON["MAST_TAG_S"]) { print $2 }' | sort -u)
  for c in "${chains[@]}"; do
    iptables -w 5 -t nat -F "$c" 2>/dev/null || true
    iptables -w 5 -t nat -X "$c" 2>/dev/null || true
  done
  # The whole 'ip nat' table, if it was not there before start.sh and holds
  # no rules or chains now.
  if [[ $(setting "$BEFORE" NAT_TABLE yes) == no ]] && iptables --version | grep -q nf_tables &&
     ! iptables -w 5 -t nat -S 2>/dev/null | grep -qv '^-P '; then
    nft delete table ip nat 2>/dev/null || true
  fi
fi

# start.sh's masquerade table for the pod subnet.
nft delete table ip "mast_cni_${NETWORK//[^A-Za-z0-9_]/_}" 2>/dev/null || true

if ip link show dev "$BRIDGE" >/dev/null 2>&1; then
  ip link delete dev "$BRIDGE" 2>/dev/null || warn "could not delete bridge $BRIDGE"
fi

rm -rf -- "$STATE_DIR/ipam/$NETWORK" "/var/lib/cni/networks/$NETWORK"
if [[ -d /var/lib/cni/results ]]; then
  for f in /var/lib/cni/results/"$NETWORK"-*; do
    [[ -e $f ]] || continue
    id=${f#/var/lib/cni/results/"$NETWORK"-}
    id=${id%-*}
    rm -f -- "$f" /var/lib/cni/results/cni-loopback-"$id"-*
  done
fi
# Empty directories other tools recreate on demand.
rmdir /var/lib/cni/results /var/lib/cni/networks /var/lib/cni 2>/dev/null || true
for d in /run/containerd/runc/*/ /run/containerd/runc /run/containerd/s /run/containerd/fifo /run/containerd; do
  [[ -d $d ]] && { rmdir "$d" 2>/dev/null || true; }
done

# ip_forward: back to off if it was off before start.sh and no other mast
# containerd (a config.toml beside a .mast-containerd marker) still runs.
if [[ $(setting "$BEFORE" IP_FORWARD 1) == 0 ]] && ! other_mast_containerd; then
  echo 0 >/proc/sys/net/ipv4/ip_forward || true
fi
rm -f "$BEFORE"

# ---- 7. cgroup controllers start.sh moved to v1 hierarchies for crun -------

# Back to the v2 hierarchy once nothing of mast's is left in them: the
# kernel returns a controller when its last v1 hierarchy is unmounted and
# has no cgroups below the root.
if [[ -s $CGROUP_MOVED ]]; then
  (
    # start.sh holds this lock until its containerd runs (see there).
    flock -w 60 8 || { warn "timed out waiting for the lock on /sys/fs/cgroup; cgroup controllers stay moved"; exit 0; }
    other_mast_containerd && exit 0
    kept=()
    while read -r c; do
      dir=/sys/fs/cgroup/$c
      [[ $c =~ ^[a-z_]+$ ]] && mountpoint -q "$dir" || continue
      find "$dir" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
      # A removed cgroup lingers until its last process is reaped, and a
      # hierarchy unmounted with one of those left is kept by the kernel
      # (unmounted, holding the controller) until mounted and unmounted
      # again: wait for /proc/cgroups to count the root alone.
      for ((i = 0; i < 100; i++)); do
        [[ $(hierarchy_cgroups "$c") == 1 ]] && break
        sleep 0.1
      done
      if [[ $(hierarchy_cgroups "$c") != 1 ]]; then
        warn "cgroup controller $c stays a v1 hierarchy at $dir: cgroups are left in it (the next stop.sh tries again)"
        kept+=("$c")
      elif ! { umount "$dir" && rmdir "$dir"; }; then
        warn "could not unmount $dir"
        kept+=("$c")
      else
        # The kernel frees the hierarchy asynchronously; wait for the
        # controller to be back, so a start.sh right after sees it settled.
        for ((i = 0; i < 100; i++)); do
          grep -qw -- "$c" /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null && break
          sleep 0.1
        done
      fi
    done <"$CGROUP_MOVED"
    if (( ${#kept[@]} )); then printf '%s\n' "${kept[@]}" >"$CGROUP_MOVED"; else rm -f "$CGROUP_MOVED"; fi
  ) 8</sys/fs/cgroup # the lock: start.sh and stop.sh of every STATE_DIR
fi

# ---- 8. --purge ---------------------------------------------------------------

if (( PURGE )) && [[ -e $STATE_DIR ]]; then
  if [[ ! -f $STATE_DIR/.mast-containerd ]] && [[ -n $(ls -A "$STATE_DIR" 2>/dev/null) ]]; then
    warn "not purging $STATE_DIR: not made by start.sh (no .mast-containerd)"
    exit 1
  fi
  mapfile -t mnts < <(mounts_under)
  if (( ${#mnts[@]} )); then
    warn "not purging $STATE_DIR: still mounted: ${mnts[*]}"
    exit 1
  fi
  rm -rf --one-file-system -- "$STATE_DIR"
fi
exit 0
