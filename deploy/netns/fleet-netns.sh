#!/usr/bin/env bash
# A many-host fleet on one machine: one network namespace for the coordinator and one
# per worker, each with its own address on a private bridge, so the control channel
# crosses real interfaces (and can be cut like a real network). Needs root.
#
#   fleet-netns.sh up ID N        bridge flID-br 10.77.ID.254/24; namespaces flID-c
#                                 (10.77.ID.1) and flID-w1..N (10.77.ID.11..)
#   fleet-netns.sh exec ID NS CMD...   run CMD in namespace NS (c, w1, w2, …)
#   fleet-netns.sh cut ID wK SECONDS   take worker K's link down for SECONDS, then up
#   fleet-netns.sh down ID        remove everything `up` made
#
# ID is 1..250 (keeps interface names under 15 characters and subnets apart).
set -euo pipefail

cmd=${1:?usage: fleet-netns.sh up|exec|cut|down ID ...}
id=${2:?ID missing}
[[ $id =~ ^[0-9]+$ ]] && (( id >= 1 && id <= 250 )) || { echo "ID must be 1..250" >&2; exit 2; }
br="fl$id-br"
net="10.77.$id"

ns_up() { # name address
  local ns="fl$id-$1" addr=$2 host="fl$id$1h" peer="fl$id$1n"
  ip netns add "$ns"
  ip link add "$host" type veth peer name "$peer"
  ip link set "$peer" netns "$ns"
  ip link set "$host" master "$br" up
  ip -n "$ns" addr add "$addr/24" dev "$peer"
  ip -n "$ns" link set "$peer" up
  ip -n "$ns" link set lo up
}

case $cmd in
  up)
    n=${3:?number of workers missing}
    ip link add "$br" type bridge
    ip addr add "$net.254/24" dev "$br"
    ip link set "$br" up
    ns_up c "$net.1"
    for k in $(seq 1 "$n"); do ns_up "w$k" "$net.$((10 + k))"; done
    ;;
  exec)
    ns=${3:?namespace missing}; shift 3
    exec ip netns exec "fl$id-$ns" "$@"
    ;;
  cut)
    w=${3:?worker missing}; secs=${4:?seconds missing}
    ip link set "fl$id${w}h" down
    sleep "$secs"
    ip link set "fl$id${w}h" up
    ;;
  down)
    for ns in $(ip netns list | awk '{print $1}' | grep -E "^fl$id-" || true); do ip netns del "$ns"; done
    ip link del "$br" 2>/dev/null || true
    ;;
  *)
    echo "unknown command $cmd: use up, exec, cut or down" >&2; exit 2
    ;;
esac
