#!/usr/bin/env bash
# Create or update a Secret holding one token (by default the Agent API token).
#
# usage: k8s/create-secret.sh [-n NAMESPACE] [-s SECRET] [-k KEY] [-l KEY=VALUE]... [TOKEN|-]
#
#   (no TOKEN)  ask for it on the terminal, without echo
#   -           read it from stdin:  pass show agentapi | k8s/create-secret.sh -
#   TOKEN       take it as an argument (it then stays in your shell history and
#               shows in the process list while the script runs; prefer the above)
#
#   -n  namespace (default dealershipai)
#   -s  Secret name (default agentapi-cred)
#   -k  key holding the token (default AGENTAPI_TOKEN)
#   -l  a non-secret KEY=VALUE to store beside it (repeatable)
#
# The token reaches kubectl through a pipe, never its arguments, and is never
# printed. Server-side apply makes a rerun replace the value, and keeps no copy of
# it in a last-applied-configuration annotation.
set -euo pipefail

namespace=dealershipai
secret=agentapi-cred
key=AGENTAPI_TOKEN
literals=()

usage() { sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//'; }

while getopts ":n:s:k:l:h" opt; do
  case "$opt" in
    n) namespace=$OPTARG ;;
    s) secret=$OPTARG ;;
    k) key=$OPTARG ;;
    l) literals+=("--from-literal=$OPTARG") ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
if [ $# -gt 1 ]; then
  usage >&2
  exit 2
fi

if [ $# -eq 0 ]; then
  if [ ! -t 0 ]; then
    echo "error: no terminal to ask for $key on; pipe it in with '-'" >&2
    exit 2
  fi
  IFS= read -r -s -p "$key for Secret $namespace/$secret: " token
  echo >&2
elif [ "$1" = "-" ]; then
  # $(...) drops the trailing newline that echo, pass and editors add.
  token=$(cat)
else
  token=$1
fi
token=${token%$'\r'}

if [ -z "$token" ]; then
  echo "error: $key is empty; Secret $namespace/$secret left unchanged" >&2
  exit 1
fi

printf '%s' "$token" |
  kubectl create secret generic "$secret" --namespace "$namespace" \
    --from-file="$key=/dev/stdin" ${literals[@]+"${literals[@]}"} \
    --dry-run=client --output yaml |
  kubectl apply --server-side --force-conflicts \
    --field-manager=orchestrator-completions-agent --filename -
unset token
