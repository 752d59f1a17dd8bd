#!/usr/bin/env bash
# An emulated long, lossy link between two hosts on one machine, for tests and benchmarks:
#
#   chile (wan0 10.220.1.2) <-veth-> router (chile0 10.220.1.1 | cologne0 10.220.2.1) <-veth-> cologne (wan0 10.220.2.2)
#
# Three network namespaces named ID-chile, ID-router, ID-cologne, so runs with different ids
# never collide. The router forwards through iptables: NFQUEUE to nfq-delay (our C helper,
# built here from source), which holds each packet the one-way delay and can emulate a rate
# bottleneck, then a partition chain and a loss chain; tbf on the router's egress is the other
# rate limit. Needs root, iproute2, iptables, make and a C compiler with libnetfilter-queue-dev.
#
# Commands (every one is idempotent; ID is 2-12 lowercase letters and digits, starting with a letter):
#   up ID [--delay-ms 110] [--rate-mbit 1000] [--buffer-ms 100] [--loss P] [--cc bbr|cubic|reno|default]
#                                 build the link (an existing, healthy one is only re-set)
#   down ID                       remove everything of ID: processes in its namespaces, namespaces, state
#   partition ID [DIR]            drop all traffic (DIR: both, to-cologne, to-chile; default both)
#   heal ID                       undo every partition
#   loss ID P [DIR]               random loss of share P (0 <= P < 1) on each crossing packet
#   delay ID MS                   one-way delay in ms (each direction)
#   bottleneck ID MBIT|off [BUFFER_MS]  the helper's rate bottleneck and its buffer
#   rate ID MBIT|off [LATENCY_MS] a tbf rate limit on the router's egress, both directions
#   cc ID bbr|cubic|reno|default  congestion control on the routes between the hosts
#   exec ID chile|router|cologne CMD...   run CMD in that namespace
#   status ID | list | iptables   show one link | ids present | the iptables binary this kernel takes
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_root=${CCAT_WAN_RUN:-/run/ccat-wan}
helper=$here/build/nfq-delay
chile_ip=10.220.1.2 router_chile_ip=10.220.1.1 router_cologne_ip=10.220.2.1 cologne_ip=10.220.2.2

die() { echo "wan: $*" >&2; exit 2; }

check_id() {
  [[ ${1:-} =~ ^[a-z][a-z0-9]{1,11}$ ]] || die "bad id '${1:-}': 2-12 lowercase letters and digits, starting with a letter"
}

check_root() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces, iptables, tc)"
  for c in ip tc make; do command -v "$c" >/dev/null || die "$c not found: apt-get install -y --no-install-recommends iproute2 iptables make gcc libnetfilter-queue-dev"; done
}

ns() { echo "$id-$1"; }
in_ns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }
state() { echo "$run_root/$id"; }
exists_ns() { ip netns list | awk '{print $1}' | grep -qx "$(ns "$1")"; }

# iptables-nft and iptables-legacy both work in this kernel's namespaces (measured: statistic,
# DROP and NFQUEUE rules load and count packets with either). nft is picked explicitly, being
# Debian's default and the interface newer kernels keep; legacy is the fallback when nft cannot
# make a chain in the router. CCAT_WAN_IPTABLES names the one binary to use instead.
pick_iptables() {
  local want=${CCAT_WAN_IPTABLES:-} c
  for c in ${want:-iptables-nft iptables-legacy}; do
    command -v "$c" >/dev/null || continue
    if [ -n "${1:-}" ]; then
      ip netns exec "$1" "$c" -w 5 -N WAN_PROBE >/dev/null 2>&1 && ip netns exec "$1" "$c" -w 5 -X WAN_PROBE >/dev/null 2>&1 || continue
    fi
    echo "$c"; return 0
  done
  die "no working iptables (tried ${want:-iptables-nft iptables-legacy}): apt-get install -y --no-install-recommends iptables"
}

ipt() { local b; b=$(cat "$(state)/iptables" 2>/dev/null) || die "link $id is not up"; in_ns router "$b" -w 5 "$@"; }

check_dir() {
  case ${1:-both} in
    both) echo "" ;;
    to-cologne) echo "-i chile0" ;;
    to-chile) echo "-i cologne0" ;;
    *) die "bad direction '$1': both, to-cologne or to-chile" ;;
  esac
}

check_number() { # NAME VALUE MAX
  [[ $2 =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad $1 '$2': a non-negative number"
  awk -v v="$2" -v m="$3" 'BEGIN { exit !(v <= m) }' || die "bad $1 '$2': at most $3"
}

set_param() { # KEY VALUE: rewrite the helper's params file, then tell it to read it again
  local f; f="$(state)/params"
  [ -f "$f" ] || die "link $id is not up"
  { grep -v "^$1=" "$f" || true; echo "$1=$2"; } > "$f.tmp" && mv -f "$f.tmp" "$f"
  local pid; pid=$(helper_pid) || die "the delay helper of $id is not running (see $(state)/helper.log)"
  kill -HUP "$pid"
}

helper_pid() { # the helper's pid, if it is alive and really ours
  local pid; pid=$(head -n1 "$(state)/ready" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = nfq-delay ] || return 1
  echo "$pid"
}

healthy() { exists_ns chile && exists_ns router && exists_ns cologne && helper_pid >/dev/null; }

set_cc() {
  local cc=$1 extra=()
  case $cc in
    bbr|cubic|reno) extra=(congctl "$cc") ;;
    default) ;;
    *) die "bad congestion control '$cc': bbr, cubic, reno or default" ;;
  esac
  in_ns chile ip route replace 10.220.2.0/24 via $router_chile_ip dev wan0 "${extra[@]}"
  in_ns cologne ip route replace 10.220.1.0/24 via $router_cologne_ip dev wan0 "${extra[@]}"
  echo "$cc" > "$(state)/cc"
}

set_loss() {
  local p=$1 d=${2:-both} sel
  check_number loss "$p" 0.999999
  sel=$(check_dir "$d")
  ipt -F WAN_LOSS
  if awk -v v="$p" 'BEGIN { exit !(v > 0) }'; then
    if [ "$d" = both ]; then
      ipt -A WAN_LOSS -i chile0 -m statistic --mode random --probability "$p" -j DROP
      ipt -A WAN_LOSS -i cologne0 -m statistic --mode random --probability "$p" -j DROP
    else
      # shellcheck disable=SC2086
      ipt -A WAN_LOSS $sel -m statistic --mode random --probability "$p" -j DROP
    fi
  fi
  echo "$p $d" > "$(state)/loss"
}

set_rate() {
  local mbit=$1 latency=${2:-50} dev burst
  if [ "$mbit" = off ]; then
    for dev in chile0 cologne0; do in_ns router tc qdisc del dev $dev root 2>/dev/null || true; done
    echo off > "$(state)/rate"; return 0
  fi
  check_number rate "$mbit" 100000
  check_number latency "$latency" 10000
  # a millisecond of traffic, and at least a whole 64 KiB GSO packet so tbf need not split it
  burst=$(awk -v m="$mbit" 'BEGIN { b = m * 125; if (b < 70000) b = 70000; printf "%d", b }')
  for dev in chile0 cologne0; do
    in_ns router tc qdisc replace dev $dev root tbf rate "${mbit}mbit" burst "$burst" latency "${latency}ms"
  done
  echo "$mbit $latency" > "$(state)/rate"
}

cmd_down() {
  local n pid pids tries
  if pid=$(helper_pid); then
    kill -TERM "$pid" 2>/dev/null || true
    for tries in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  for n in cologne chile router; do
    exists_ns "$n" || continue
    # what runs inside our namespaces was started for this link (sshd, iperf3, the helper)
    pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      for tries in $(seq 30); do [ -z "$(ip netns pids "$(ns "$n")" 2>/dev/null)" ] && break; sleep 0.1; done
      pids=$(ip netns pids "$(ns "$n")" 2>/dev/null || true)
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$(ns "$n")"
  done
  rm -rf "$(state)"
  for n in cologne chile router; do ! exists_ns "$n" || die "namespace $(ns "$n") is still there"; done
}

cmd_up() {
  local delay=110 rate=1000 buffer=100 loss=0 cc=default
  while [ $# -gt 0 ]; do
    case $1 in
      --delay-ms) delay=${2:?}; shift 2 ;;
      --rate-mbit) rate=${2:?}; shift 2 ;;
      --buffer-ms) buffer=${2:?}; shift 2 ;;
      --loss) loss=${2:?}; shift 2 ;;
      --cc) cc=${2:?}; shift 2 ;;
      *) die "unknown option '$1' for up" ;;
    esac
  done
  check_number delay "$delay" 10000
  [ "$rate" = off ] || check_number rate "$rate" 100000
  check_number buffer "$buffer" 10000
  check_number loss "$loss" 0.999999
  case $cc in bbr|cubic|reno|default) ;; *) die "bad congestion control '$cc'" ;; esac
  make -s -C "$here" build/nfq-delay >&2

  if ! healthy; then
    cmd_down
    mkdir -p "$(state)"
    local n
    for n in chile router cologne; do ip netns add "$(ns "$n")"; in_ns "$n" ip link set lo up; done
    ip link add wan0 netns "$(ns chile)" type veth peer name chile0 netns "$(ns router)"
    ip link add wan0 netns "$(ns cologne)" type veth peer name cologne0 netns "$(ns router)"
    in_ns chile ip addr add $chile_ip/24 dev wan0
    in_ns router ip addr add $router_chile_ip/24 dev chile0
    in_ns router ip addr add $router_cologne_ip/24 dev cologne0
    in_ns cologne ip addr add $cologne_ip/24 dev wan0
    in_ns chile ip link set wan0 up
    in_ns cologne ip link set wan0 up
    in_ns router ip link set chile0 up
    in_ns router ip link set cologne0 up
    in_ns router sysctl -qw net.ipv4.ip_forward=1
    # the bandwidth-delay product at 1 Gbit/s and 220 ms is about 28 MB: let autotuning go to 256 MiB
    for n in chile cologne; do
      in_ns "$n" sysctl -qw net.ipv4.tcp_rmem="4096 131072 268435456" net.ipv4.tcp_wmem="4096 16384 268435456"
    done
    pick_iptables "$(ns router)" > "$(state)/iptables"
    # The delay comes first (mangle runs before filter in FORWARD): the kernel cuts a GSO
    # super-packet into wire-sized segments to queue it, and each segment then meets the loss
    # rule on its own, so a loss share is per packet on the wire, as on a real link.
    # No --queue-bypass: if the helper dies the link goes dark rather than silently losing its delay.
    ipt -t mangle -A FORWARD -i chile0 -j NFQUEUE --queue-num 0
    ipt -t mangle -A FORWARD -i cologne0 -j NFQUEUE --queue-num 1
    ipt -N WAN_PART
    ipt -N WAN_LOSS
    ipt -A FORWARD -j WAN_PART
    ipt -A FORWARD -j WAN_LOSS
    printf 'delay_ms=%s\nrate_mbit=%s\nbuffer_ms=%s\n' "$delay" "$([ "$rate" = off ] && echo 0 || echo "$rate")" "$buffer" > "$(state)/params"
    ip netns exec "$(ns router)" setsid "$helper" --params "$(state)/params" --ready "$(state)/ready.tmp" --queue 0 --queue 1 \
      </dev/null >>"$(state)/helper.log" 2>&1 &
    local tries
    for tries in $(seq 100); do [ -s "$(state)/ready.tmp" ] && break; sleep 0.05; done
    [ -s "$(state)/ready.tmp" ] || { cat "$(state)/helper.log" >&2; cmd_down; die "the delay helper did not start"; }
    mv -f "$(state)/ready.tmp" "$(state)/ready"
  else
    set_param delay_ms "$delay"
    set_param rate_mbit "$([ "$rate" = off ] && echo 0 || echo "$rate")"
    set_param buffer_ms "$buffer"
    ipt -F WAN_PART
  fi
  set_loss "$loss" both
  set_cc "$cc"
  echo "wan: $id up: chile $chile_ip <-> cologne $cologne_ip, ${delay} ms each way, bottleneck $rate Mbit/s, loss $loss, cc $cc, $(cat "$(state)/iptables")"
}

cmd_status() {
  healthy || { echo "wan: $id is not up"; return 1; }
  echo "id $id, helper pid $(helper_pid), $(cat "$(state)/iptables"), cc $(cat "$(state)/cc"), loss $(cat "$(state)/loss")"
  echo "params: $(tr '\n' ' ' < "$(state)/params")"
  ipt -t mangle -S FORWARD
  ipt -S
  ipt -L WAN_LOSS -v -n -x
  in_ns router tc qdisc show
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  iptables) check_root; tmp="wanprobe$$"; ip netns add "$tmp"; trap 'ip netns del "$tmp"' EXIT; id=x pick_iptables "$tmp"; exit 0 ;;
  list) ip netns list | awk '{print $1}' | sed -n 's/-router$//p'; exit 0 ;;
  up|down|partition|heal|loss|delay|bottleneck|rate|cc|exec|status) ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
id=${1:-}; check_id "$id"; shift
check_root
case $cmd in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  partition)
    sel=$(check_dir "${1:-both}")
    # shellcheck disable=SC2086
    ipt -C WAN_PART $sel -j DROP 2>/dev/null || ipt -A WAN_PART $sel -j DROP ;;
  heal) ipt -F WAN_PART ;;
  loss) set_loss "${1:?loss ID P [DIR]}" "${2:-both}" ;;
  delay) check_number delay "${1:?delay ID MS}" 10000; set_param delay_ms "$1" ;;
  bottleneck)
    if [ "${1:?bottleneck ID MBIT|off [BUFFER_MS]}" = off ]; then set_param rate_mbit 0
    else check_number rate "$1" 100000; set_param rate_mbit "$1"; fi
    [ -z "${2:-}" ] || { check_number buffer "$2" 10000; set_param buffer_ms "$2"; } ;;
  rate) healthy || die "link $id is not up"; set_rate "${1:?rate ID MBIT|off [LATENCY_MS]}" "${2:-50}" ;;
  cc) healthy || die "link $id is not up"; set_cc "${1:?cc ID bbr|cubic|reno|default}" ;;
  exec)
    case ${1:-} in chile|router|cologne) ;; *) die "exec ID chile|router|cologne CMD..." ;; esac
    host=$1; shift; [ $# -gt 0 ] || die "exec ID $host CMD..."
    exists_ns "$host" || die "namespace $(ns "$host") does not exist"
    exec ip netns exec "$(ns "$host")" "$@" ;;
  status) cmd_status ;;
esac
