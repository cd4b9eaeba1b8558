#!/bin/bash
# Run by failover.service on Container-Optimized OS (terraform/gcp writes it with cloud-init):
# mount the stateful disk, read the secrets from Secret Manager into this process's
# environment only, then run the coordinator's container in the foreground.
#
# Its inputs, written by Terraform next to it in /etc/failover:
#   failover.conf   KEY=VALUE lines: IMAGE, REGISTRY (may be empty), STATE_DEVICE, STOP_TIMEOUT
#   command         the container's arguments, one per line (e.g. "run")
#   secrets         "ENV_NAME projects/P/secrets/S/versions/V" lines
#   container.env   plain (non-secret) environment variables, docker --env-file format
#   policy.yaml     the policy, mounted read-only at /etc/failover/policy.yaml
# (FAILOVER_HOST_CONF, FAILOVER_HOST_STATE and FAILOVER_HOST_RUN move those places for tests.)
set -euo pipefail

conf_dir="${FAILOVER_HOST_CONF:-/etc/failover}"
state="${FAILOVER_HOST_STATE:-/mnt/disks/failover-state}"
run_dir="${FAILOVER_HOST_RUN:-/run/failover}"
declare -A conf=()
while IFS='=' read -r key value; do
  [[ -z "$key" || "$key" == \#* ]] && continue
  conf["$key"]="$value"
done <"$conf_dir/failover.conf"

image="${conf[IMAGE]}"
registry="${conf[REGISTRY]:-}"
stop_timeout="${conf[STOP_TIMEOUT]:-40}"
device="/dev/disk/by-id/google-${conf[STATE_DEVICE]}"

# The state disk (sqlite store and audit log) outlives the VM: the managed instance group keeps
# it as a stateful disk. Formatted on first use only.
if ! mountpoint -q "$state"; then
  if ! blkid "$device" >/dev/null 2>&1; then
    mkfs.ext4 -q -m 0 -E lazy_itable_init=0,lazy_journal_init=0,discard "$device"
  fi
  mkdir -p "$state"
  mount -o discard,defaults "$device" "$state"
fi
chown 10001:10001 "$state" # the image's non-root user

metadata=http://metadata.google.internal/computeMetadata/v1
access_token() {
  curl -sf --retry 5 --retry-connrefused -H 'Metadata-Flavor: Google' \
    "$metadata/instance/service-accounts/default/token" |
    sed -E 's/.*"access_token" *: *"([^"]+)".*/\1/'
}

# Docker's credentials for Artifact Registry / Container Registry, in a home on tmpfs.
export HOME="$run_dir/home"
mkdir -p "$HOME"
if [[ -n "$registry" ]]; then
  docker-credential-gcr configure-docker --registries="$registry" >/dev/null
fi

# Secrets: into this shell's environment, handed to the container by name (docker --env NAME),
# never written to a file.
env_args=()
if [[ -s "$conf_dir/secrets" ]]; then
  token="$(access_token)"
  while read -r name resource; do
    [[ -z "$name" ]] && continue
    answer="$(curl -sf --retry 5 -H "Authorization: Bearer $token" \
      "https://secretmanager.googleapis.com/v1/$resource:access")" || {
      echo "failover: cannot read secret $resource for $name" >&2
      exit 1
    }
    value="$(printf '%s' "$answer" | tr -d '\n' | sed -E 's/.*"data" *: *"([^"]*)".*/\1/' | base64 -d)"
    export "$name=$value"
    env_args+=(--env "$name")
  done <"$conf_dir/secrets"
  unset token answer value
fi

mapfile -t command <"$conf_dir/command"

docker rm -f failover >/dev/null 2>&1 || true
exec docker run --rm --name failover \
  --network host \
  --stop-timeout "$stop_timeout" \
  --ulimit nofile=65536:65536 \
  --env-file "$conf_dir/container.env" \
  "${env_args[@]}" \
  --volume "$conf_dir/policy.yaml:/etc/failover/policy.yaml:ro" \
  --volume "$state:/var/lib/failover" \
  "$image" "${command[@]}"
