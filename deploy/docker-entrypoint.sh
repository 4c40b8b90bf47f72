#!/bin/sh
# Container entrypoint: size the CPU thread pools, then serve the service (or run the arguments).
set -eu

: "${INFERENCE_THREADS:=1}"
export INFERENCE_THREADS
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$INFERENCE_THREADS}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-$INFERENCE_THREADS}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$INFERENCE_THREADS}"
export TF_NUM_INTRAOP_THREADS="${TF_NUM_INTRAOP_THREADS:-$INFERENCE_THREADS}"
export TF_NUM_INTEROP_THREADS="${TF_NUM_INTEROP_THREADS:-1}"

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

# X-Forwarded-For is trusted only from FORWARDED_ALLOW_IPS (comma-separated IPs/CIDRs of the
# proxies in front); empty (the default) trusts no one, so clients cannot pick their own IP.
# uvicorn's own default would trust 127.0.0.1.
FORWARDED_ALLOW_IPS="${FORWARDED_ALLOW_IPS:-}"
export FORWARDED_ALLOW_IPS
if [ -n "$FORWARDED_ALLOW_IPS" ]; then
    set -- --proxy-headers --forwarded-allow-ips "$FORWARDED_ALLOW_IPS"
else
    set -- --no-proxy-headers
fi

# Slow clients: idle keep-alive connections close after TIMEOUT_KEEP_ALIVE_S; headers must
# arrive within HEADER_READ_TIMEOUT_S and a body may not pause longer than BODY_READ_TIMEOUT_S
# (shared/server.py's protocol reads both from the environment).
export HEADER_READ_TIMEOUT_S="${HEADER_READ_TIMEOUT_S:-10}"
export BODY_READ_TIMEOUT_S="${BODY_READ_TIMEOUT_S:-30}"

# One worker per container: scale with replicas, not with processes inside one pod.
exec uvicorn --factory "services.${SERVICE:?SERVICE is not set}.app:create_app" \
    --host "${HOST:-0.0.0.0}" --port "${PORT:?PORT is not set}" \
    --http shared.server:HttpToolsProtocol --loop uvloop \
    --timeout-keep-alive "${TIMEOUT_KEEP_ALIVE_S:-5}" \
    --limit-concurrency "${LIMIT_CONCURRENCY:-1000}" \
    --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_S:-20}" \
    "$@"
