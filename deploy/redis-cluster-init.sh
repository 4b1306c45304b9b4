#!/bin/sh
# Form the coupon-rush Redis Cluster once; on later runs, check it and heal address changes.
#
# Run by the one-shot `redis-cluster-init` service of docker-compose.cluster.yml (in the
# redis:7 image, which has redis-cli and getent):
#   docker compose -f docker-compose.yml -f docker-compose.cluster.yml up -d --build --scale api=4 --scale worker=2
#   docker compose -f docker-compose.yml -f docker-compose.cluster.yml logs redis-cluster-init
#   docker compose -f docker-compose.yml -f docker-compose.cluster.yml run --rm redis-cluster-init   # re-check/heal by hand
#
# REDIS_CLUSTER_NODES lists the nodes as host:port, space separated. On a fresh set of nodes it
# runs `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`. redis-cli and
# CLUSTER MEET need IP addresses, not names, so each name is resolved first (the nodes announce
# their names to clients through cluster-announce-hostname). If the cluster exists already (the
# volumes were kept) it only re-introduces the nodes to one another at their current addresses,
# which heals containers that came back with new IPs, and waits for cluster_state:ok.
set -eu

NODES="${REDIS_CLUSTER_NODES:-redis-cluster-1:7001 redis-cluster-2:7002 redis-cluster-3:7003}"
TIMEOUT_S="${REDIS_CLUSTER_INIT_TIMEOUT_S:-60}"

log() { echo "redis-cluster-init: $*"; }
host_of() { echo "${1%:*}"; }
port_of() { echo "${1##*:}"; }
rcli() { _rc_node="$1"; shift; redis-cli -h "$(host_of "$_rc_node")" -p "$(port_of "$_rc_node")" "$@"; }
# One field of CLUSTER INFO (its lines end in \r\n).
info_field() { rcli "$1" cluster info | tr -d '\r' | sed -n "s/^$2://p"; }

resolve_ip() {  # a name -> its first address; an IPv4 address is kept as it is
    case "$1" in *[!0-9.]*) ;; *) echo "$1"; return 0 ;; esac
    _ri_ip="$(getent hosts "$1" | awk 'NR == 1 { print $1 }')"
    [ -n "$_ri_ip" ] || { log "cannot resolve $1" >&2; return 1; }
    echo "$_ri_ip"
}
addr_of() {  # host:port -> ip:port
    _ao_ip="$(resolve_ip "$(host_of "$1")")" || return 1
    echo "$_ao_ip:$(port_of "$1")"
}

wait_for() {  # wait_for DESCRIPTION COMMAND...: retry COMMAND each second until TIMEOUT_S
    _wf_what="$1"; shift
    _wf_waited=0
    until "$@" >/dev/null 2>&1; do
        _wf_waited=$((_wf_waited + 1))
        if [ "$_wf_waited" -ge "$TIMEOUT_S" ]; then
            log "gave up after ${TIMEOUT_S}s waiting for $_wf_what"
            return 1
        fi
        sleep 1
    done
}

answers() { [ "$(rcli "$1" ping 2>/dev/null)" = "PONG" ]; }
state_ok() { [ "$(info_field "$1" cluster_state)" = "ok" ]; }
all_ok() { for _ao_node in $NODES; do state_ok "$_ao_node" || return 1; done; }

# 1. Every node answers, and every name resolves.
ADDRS=""
for node in $NODES; do
    wait_for "$node to answer PING" answers "$node"
    addr="$(addr_of "$node")"
    ADDRS="$ADDRS $addr"
done

# 2. Fresh, formed, or something in between?
fresh=0; formed=0; total=0
for node in $NODES; do
    total=$((total + 1))
    known="$(info_field "$node" cluster_known_nodes)"
    assigned="$(info_field "$node" cluster_slots_assigned)"
    if [ "$known" = "1" ] && [ "$assigned" = "0" ]; then
        fresh=$((fresh + 1))
    elif [ "$assigned" = "16384" ]; then
        formed=$((formed + 1))
    fi
done

if [ "$fresh" -eq "$total" ]; then
    log "creating the cluster on:$ADDRS"
    # shellcheck disable=SC2086  # ADDRS is a list of ip:port words
    redis-cli --cluster create $ADDRS --cluster-replicas 0 --cluster-yes
elif [ "$formed" -eq "$total" ]; then
    if all_ok; then
        log "cluster already formed and ok"
        exit 0
    fi
    log "cluster formed but not ok yet: re-introducing the nodes at their current addresses"
    for node in $NODES; do
        self_addr="$(addr_of "$node")"
        for addr in $ADDRS; do
            [ "$addr" = "$self_addr" ] && continue
            rcli "$node" cluster meet "${addr%:*}" "${addr##*:}" >/dev/null || true
        done
    done
else
    log "the nodes are neither all fresh nor all in one formed cluster:"
    for node in $NODES; do
        log "  $node: known_nodes=$(info_field "$node" cluster_known_nodes) slots_assigned=$(info_field "$node" cluster_slots_assigned)"
    done
    log "fix by hand (redis-cli --cluster check/fix), or start over with empty volumes:"
    log "  docker compose -f docker-compose.yml -f docker-compose.cluster.yml down -v"
    exit 1
fi

# 3. Wait until every node sees the whole cluster as ok.
wait_for "cluster_state:ok on every node" all_ok
log "cluster ok:"
rcli "$(echo "$NODES" | awk '{ print $1 }')" cluster nodes
