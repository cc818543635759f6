#!/bin/bash
# Runs each line of cases.txt (words split by the shell; '' is an empty argument) through
# out/own, out/cli11 and out/po (built by run.sh) and shows exit code, stdout (first line) and stderr of each.
cd "$(dirname "$0")"
while IFS= read -r line; do
  echo "=== dtkfs $line"
  for p in own cli11 po; do
    eval "set -- $line"
    out=$(out/$p "$@" 2>out/err.txt); rc=$?
    printf '  %-5s rc=%s out=%s err=%s\n' "$p" "$rc" "$(head -1 <<<"$out")" "$(head -1 out/err.txt)"
  done
done < cases.txt
