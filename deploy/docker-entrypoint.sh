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

# One worker per container: scale with replicas, not with processes inside one pod.
exec uvicorn --factory "services.${SERVICE:?SERVICE is not set}.app:create_app" \
    --host "${HOST:-0.0.0.0}" --port "${PORT:?PORT is not set}" \
    --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_S:-20}"
