#!/usr/bin/env bash
# Install containerd, runc, crun, busybox-static, the CNI plugins, nftables and
# iproute2 from Debian's packages, unless everything is already there.
# Quiet on success; exits non-zero with a message naming what failed.
set -euo pipefail
# runc, ip, nft and iptables live in sbin, which a non-login PATH may lack.
export PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

PACKAGES=(containerd runc crun busybox-static containernetworking-plugins nftables iproute2)

# What mast's ops scripts need from those packages (iptables comes with
# containernetworking-plugins and is what the bridge plugin's ipMasq uses).
REQUIRED=(
  containerd ctr containerd-shim-runc-v2 runc crun busybox nft ip iptables
  /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback
)

missing() {
  local m=() x
  for x in "${REQUIRED[@]}"; do
    if [[ $x == /* ]]; then
      [[ -x $x ]] || m+=("$x")
    else
      command -v "$x" >/dev/null 2>&1 || m+=("$x")
    fi
  done
  # busybox-static specifically (a dynamic busybox is no use in an image).
  if command -v busybox >/dev/null 2>&1 && ! busybox_is_static; then
    m+=("busybox(static)")
  fi
  printf '%s\n' "${m[@]}"
}

busybox_is_static() {
  local bb
  bb=$(command -v busybox) || return 1
  # A dynamic ELF names its loader (PT_INTERP) near the start of the file.
  ! head -c 4096 "$bb" | grep -aq -e '/ld-linux' -e '/ld-musl'
}

todo=$(missing)
[[ -z $todo ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "install.sh: missing: $(echo "$todo" | tr '\n' ' ')" >&2
  echo "install.sh: must run as root to apt-get install ${PACKAGES[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install.sh: missing: $(echo "$todo" | tr '\n' ' '); no apt-get on this machine" >&2
  exit 1
fi

log=$(mktemp /tmp/mast-containerd-install.XXXXXX.log)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update >"$log" 2>&1; then
  echo "install.sh: apt-get update failed:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >"$log" 2>&1; then
  echo "install.sh: apt-get install ${PACKAGES[*]} failed:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi

todo=$(missing)
if [[ -n $todo ]]; then
  echo "install.sh: still missing after apt-get install: $(echo "$todo" | tr '\n' ' ')" >&2
  exit 1
fi
