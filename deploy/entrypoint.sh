#!/bin/sh
# Every container of the image starts through this (Dockerfile ENTRYPOINT), then runs its
# command. With PROMETHEUS_MULTIPROC_DIR set (compose.yaml: web and worker), the counter
# files a previous run left there are removed first: a restarted container can reuse the
# process ids of its last life, and a dead process's counts must not be added to the new
# ones. Only the files of this folder go; a subfolder is another service's (the worker's
# lives inside web's, so a scrape of web counts both; core/metrics.py).
set -eu
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete
fi
exec "$@"
