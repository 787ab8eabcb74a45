#!/usr/bin/env bash
# Builds the image from the Dockerfile without a Docker daemon, then runs in it what
# docker-compose.yml runs: `make docker-build` (README.md, "Docker: what is verified").
#
# - buildah (Debian's package) builds the Dockerfile as it is, every RUN step executed, with
#   chroot isolation and vfs storage under $WORK: no daemon, no privileges beyond root's.
# - No registry of images is reachable: the base image, debian:bookworm-slim, is made with
#   debootstrap (minbase, the same suite) from the Debian mirror apt uses, and tagged under
#   that name. It is not the Docker Hub image byte for byte (see README.md).
# - Then, in containers of the built image as its USER: the token provisioning of the
#   compose "provision" service twice (idempotent) and the migrations, against a fresh database
#   on the local PostgreSQL ($PGURL_ADMIN) and against SQLite; `mcuprof serve` and
#   `mcuprof agent` (its token from MCUPROF_TOKEN_FILE on a shared folder, as compose's
#   volume), the image's HEALTHCHECK command, and a model submitted and measured end to end.
#
# Root only (apt-get, chroot); 3 to 8 minutes on 2 cores, and about 6 GB of disk under
# $WORK while it runs (vfs storage copies whole trees: the build keeps no intermediate
# layers, and the image is removed at the end unless MCUPROF_DOCKER_KEEP=1).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${MCUPROF_DOCKER_WORK:-/tmp/mcuprof-docker}
IMAGE=localhost/mcuprof:check
BASE=docker.io/library/debian:bookworm-slim
MIRROR=${MCUPROF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PGURL_ADMIN=${MCUPROF_DOCKER_PG_ADMIN:-postgresql://postgres@127.0.0.1:5432/postgres}
DB=mcuprof_docker_check
PORT=${MCUPROF_DOCKER_PORT:-18231}
UIDGID=10001:10001

say() { printf '\n== %s\n' "$*"; }
ba() { buildah --storage-driver vfs --root "$WORK/storage" --runroot "$WORK/run" "$@"; }

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing buildah and debootstrap (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    buildah debootstrap uidmap >/dev/null
fi
mkdir -p "$WORK"

containers=()
pids=()
# A `buildah run` in the background: ending it leaves its command running, so its whole
# process tree is ended, deepest first.
kill_tree() {
  local child
  for child in $(pgrep -P "$1"); do kill_tree "$child"; done
  kill "$1" 2>/dev/null || true
}
cleanup() {
  for pid in "${pids[@]}"; do kill_tree "$pid"; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for c in "${containers[@]}"; do ba rm "$c" >/dev/null 2>&1 || true; done
  ba rm --all >/dev/null 2>&1 || true  # a failed build's working container
  if [ "${MCUPROF_DOCKER_KEEP:-0}" != 1 ]; then ba rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
  psql -q "$PGURL_ADMIN" -c "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! ba inspect --type image "$BASE" >/dev/null 2>&1; then
  say "base image $BASE from debootstrap (minbase bookworm, $MIRROR)"
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log"
  ctr=$(ba from scratch)
  mnt=$(ba mount "$ctr")
  cp -a "$WORK/rootfs/." "$mnt/"
  ba umount "$ctr" >/dev/null
  ba config --cmd bash \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  ba commit -q "$ctr" "$BASE" >/dev/null
  ba rm "$ctr" >/dev/null
  rm -rf "$WORK/rootfs"
fi

# Where TLS to PyPI goes through a proxy with its own certificate authority (as on the
# machines this was written on), pip in the build needs this host's CA bundle: it is
# mounted, with a pip.conf naming it, for the RUN steps only (nothing of it is committed to
# the image, and the Dockerfile is built unchanged).
build_mounts=()
host_ca=/etc/ssl/certs/ca-certificates.crt
if [ -r "$host_ca" ]; then
  printf '[global]\ncert = /etc/mcuprof-build-ca.crt\n' >"$WORK/pip.conf"
  build_mounts=(--volume "$host_ca:/etc/mcuprof-build-ca.crt:ro"
                --volume "$WORK/pip.conf:/etc/pip.conf:ro")
fi

say "buildah bud: the Dockerfile, every step"
start=$(date +%s)
# --format docker: the OCI format has no HEALTHCHECK.
ba bud --isolation chroot --network host --pull-never --layers=false --format docker \
  "${build_mounts[@]}" -t "$IMAGE" "$ROOT"
say "built $IMAGE in $(( $(date +%s) - start )) s"

say "the image's configuration"
ba inspect --type image "$IMAGE" >"$WORK/image.json"
python3 - "$WORK/image.json" "$PORT" >"$WORK/healthcheck.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))["Docker"]["config"]
user, check = config.get("User", ""), config.get("Healthcheck") or {}
assert user.split(":")[0] == "10001", f"USER is {user!r}, not 10001"
assert check.get("Test", [""])[0] == "CMD", f"no HEALTHCHECK: {check}"
print(f"USER {user}; HEALTHCHECK {check['Test'][1:]}", file=sys.stderr)
# The same command, at the port this check serves on.
print(json.dumps([arg.replace(":8000/", f":{sys.argv[2]}/") for arg in check["Test"][1:]]))
PY

# Containers of the image, as compose runs them: its USER, its environment, host network
# (compose's own network needs a daemon), the token volume as a host folder.
tokens="$WORK/tokens"
rm -rf "$tokens" && mkdir -p "$tokens" && chown "$UIDGID" "$tokens" && chmod 700 "$tokens"
new() {
  local c
  c=$(ba from --pull-never "$IMAGE")
  containers+=("$c")
  echo "$c"
}
in_ctr() {  # in_ctr CONTAINER ENV... -- COMMAND...
  local c=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=(--env "$1"); shift; done
  shift
  ba run --isolation chroot --network host --user "$UIDGID" \
    --volume "$tokens:/var/lib/mcuprof/tokens" "${envs[@]}" "$c" -- "$@"
}

c=$(new)
say "runs as"
test "$(in_ctr "$c" -- id -u)" = 10001 && echo "uid 10001, not root"
say "the CLI and its commands"
in_ctr "$c" -- mcuprof --help >/dev/null
in_ctr "$c" -- mcuprof serve --help >/dev/null
in_ctr "$c" -- mcuprof agent --help >/dev/null
# shellcheck disable=SC2016  # expanded in the container
in_ctr "$c" -- sh -c 'ls "$MCUPROF_BUILD_DIR"'

say "migrations on SQLite (mcuprof token create migrates first)"
in_ctr "$c" MCUPROF_DATABASE_URL=sqlite:////tmp/check.db -- \
  mcuprof token create --role user --name sqlite-check >/dev/null

say "PostgreSQL: a fresh database $DB, the provision service's command twice"
psql -q "$PGURL_ADMIN" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
db_url="postgresql://postgres@127.0.0.1:5432/$DB"
in_ctr "$c" MCUPROF_DATABASE_URL="$db_url" -- mcuprof-provision-tokens
in_ctr "$c" MCUPROF_DATABASE_URL="$db_url" -- mcuprof-provision-tokens
stat -c '%u:%g %a %n' "$tokens/agent" "$tokens/user"

say "the API (127.0.0.1:$PORT) and one virtual-board agent, token from MCUPROF_TOKEN_FILE"
api=$(new)
in_ctr "$api" MCUPROF_DATABASE_URL="$db_url" -- \
  mcuprof serve --host 127.0.0.1 --port "$PORT" >"$WORK/api.log" 2>&1 &
api_pid=$!
pids+=("$api_pid")
mapfile -t health < <(python3 -c 'import json, sys; print(*json.load(sys.stdin), sep="\n")' \
  <"$WORK/healthcheck.json")
for _ in $(seq 60); do
  kill -0 "$api_pid" 2>/dev/null || { cat "$WORK/api.log" >&2; exit 1; }
  in_ctr "$c" -- "${health[@]}" 2>/dev/null && break
  sleep 2
done
in_ctr "$c" -- "${health[@]}" && echo "API healthy (the image's HEALTHCHECK command)"
agent=$(new)
in_ctr "$agent" MCUPROF_SERVER="http://127.0.0.1:$PORT" \
  MCUPROF_TOKEN_FILE=/var/lib/mcuprof/tokens/agent -- \
  mcuprof agent --name compose-agent --board virtual:nucleo-f446re >"$WORK/agent.log" 2>&1 &
agent_pid=$!
pids+=("$agent_pid")
sleep 10
kill -0 "$agent_pid" 2>/dev/null || { cat "$WORK/agent.log" >&2; exit 1; }

say "a model submitted and measured through the agent, with the provisioned user token"
in_ctr "$c" MCUPROF_SERVER="http://127.0.0.1:$PORT" \
  MCUPROF_TOKEN_FILE=/var/lib/mcuprof/tokens/user -- \
  timeout 900 mcuprof submit /opt/mcuprof/bench_firmware/samples/kws_tiny.tflite \
  --device virtual:nucleo-f446re --wait
say "docker build checks passed (logs in $WORK)"
