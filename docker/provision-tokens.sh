#!/bin/sh
# Provisions the tokens of docker-compose.yml (its one-shot "provision" service, before the
# API starts): the agent's, which the agent reads as its MCUPROF_TOKEN_FILE, and a first
# user's (`mcuprof serve` refuses to start while no user could use it), each in a file of
# the "tokens" volume that only the image's user reads. No token is ever in an environment
# variable or on a command line.
#
#   docker compose exec api cat /var/lib/mcuprof/tokens/user     the user token
#
# Idempotent: the first run creates random tokens and writes the files; a later run finds
# them registered, or registers them again (a new database). A token of the same name with
# another value (a new volume, an old database) is revoked and replaced.
set -eu
umask 077
dir=${MCUPROF_TOKEN_DIR:-/var/lib/mcuprof/tokens}
log() { echo "mcuprof-provision-tokens: $*"; }

# provision ROLE NAME FILE
provision() {
  role=$1 name=$2 file=$3
  if [ ! -s "$file" ]; then
    mcuprof token revoke "$name" >/dev/null 2>&1 || true
    if ! out=$(mcuprof token create --role "$role" --name "$name" 2>&1 >"$file.new"); then
      rm -f "$file.new"
      echo "$out" >&2
      exit 1
    fi
    mv "$file.new" "$file"
    log "$role token '$name' created in $file"
    return
  fi
  token=$(head -n 1 "$file")
  if out=$(MCUPROF_NEW_TOKEN="$token" mcuprof token create --role "$role" --name "$name" \
             2>&1 >/dev/null); then
    log "$role token '$name' registered from $file"
    return
  fi
  case "$out" in
    *"exists"*) ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
  # A token of that name exists: the file's (nothing to do) or a stale one. Registering the
  # file's token under a probe name tells which without a server.
  probe="$name-probe"
  if out=$(MCUPROF_NEW_TOKEN="$token" mcuprof token create --role "$role" --name "$probe" \
             2>&1 >/dev/null); then
    mcuprof token revoke "$probe" >/dev/null 2>&1
    mcuprof token revoke "$name" >/dev/null 2>&1
    MCUPROF_NEW_TOKEN="$token" mcuprof token create --role "$role" --name "$name" \
      >/dev/null 2>&1
    log "stale $role token '$name' replaced by the one in $file"
    return
  fi
  case "$out" in
    *"already registered"*) log "$role token '$name' is in place" ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
}

provision agent "${MCUPROF_AGENT_NAME:-compose-agent}" "$dir/agent"
provision user compose-user "$dir/user"
