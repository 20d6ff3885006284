#!/bin/sh
# Runs a server for a test or benchmark so that it can never outlive its caller.
# Usage: group-leader.sh LOG WORKDIR PERSIST COMMAND...  (started as the leader of a new process
# group, with stdin a pipe held by the caller).
# It runs COMMAND in the background (output to LOG) and blocks on stdin. EOF — the caller stopped
# it, exited, panicked or was killed — or any line means "stop": SIGKILL the rest of the group,
# reap, delete PERSIST (unless WORKDIR/keep-state exists; empty PERSIST: nothing) and WORKDIR.
log=$1; work=$2; persist=$3; shift 3
"$@" >"$log" 2>&1 </dev/null &
child=$!
read -r _ || true
pids=$(pgrep -g $$)
for p in $pids; do [ "$p" = "$$" ] || kill -9 "$p" 2>/dev/null; done
wait "$child" 2>/dev/null
for p in $(pgrep -g $$); do [ "$p" = "$$" ] || kill -9 "$p" 2>/dev/null; done
i=0
for p in $pids; do
  [ "$p" = "$$" ] && continue
  while [ $i -lt 200 ] && [ -e "/proc/$p" ] && ! grep -q ') Z' "/proc/$p/stat" 2>/dev/null; do
    sleep 0.05; i=$((i+1))
  done
done
if [ -n "$persist" ] && [ ! -e "$work/keep-state" ]; then rm -rf "$persist"; fi
rm -rf "$work"
exit 0
