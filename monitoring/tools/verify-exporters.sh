#!/bin/sh
# Checks every source link of monitoring/exporters.yaml against a clone of
# the exporter: the linked line (or the two after it) must hold the last
# word of the metric's name, as the exporter spells it when it builds the
# name. Run it when adding a metric or moving an exporter's version:
#
#   monitoring/tools/verify-exporters.sh DIR
#
# DIR holds git clones (with tags) named like the repositories:
# DIR/danielqsj/kafka_exporter, DIR/prometheus-community/postgres_exporter,
# DIR/oliver006/redis_exporter, DIR/prometheus/client_golang. Links outside
# github.com, and repositories without a clone in DIR, are listed, not checked.
set -eu
dir=${1:?usage: verify-exporters.sh DIR-with-clones}
list="$(dirname "$0")/../exporters.yaml"
bad=0
for url in $(sed -n 's/.*source: "\([^"]*\)".*/\1/p' "$list"); do
  name=$(grep -F "\"$url\"" "$list" | sed -n 's/.*name: \([a-z_]*\),.*/\1/p')
  case $url in
  https://github.com/*/blob/*#L*) ;;
  *) echo "not checked (no source line): $name $url"; continue;;
  esac
  rest=${url#https://github.com/}
  repo=$(echo "$rest" | cut -d/ -f1-2)
  ref=$(echo "$rest" | cut -d/ -f4)
  path=$(echo "${rest%%#*}" | cut -d/ -f5-)
  line=${url##*#L}
  if [ ! -d "$dir/$repo" ]; then echo "not checked (no clone in $dir/$repo): $name"; continue; fi
  # redis_up -> up; kafka_consumergroup_lag_sum -> lag_sum; pg_settings_max_connections -> name (generated)
  word=$(echo "$name" | awk -F_ '{print $NF}')
  text=$(git -C "$dir/$repo" show "$ref:$path" | sed -n "${line},$((line + 2))p")
  if printf '%s' "$text" | grep -q -- "$word\|BuildFQName(namespace, settingsSubsystem, name)"; then
    echo "ok  $name  $repo@$ref $path:$line"
  else
    echo "BAD $name  $repo@$ref $path:$line: $(printf '%s' "$text" | tr -s ' \t\n' ' ')" >&2; bad=1
  fi
done
exit $bad
