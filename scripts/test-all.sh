#!/usr/bin/env bash
# `make test`: every check, in two lanes side by side, each part timed.
#
# On 2 cores a build keeps both busy, but much of `make test` is not a build: downloads and
# installs, tests that wait on moto, qemu, a browser or a sleep, and the shipped build's fat-LTO
# link, which runs on one core. So the parts run in two lanes that meet where one needs the
# other's output (docs/testing.md has the plan and the times):
#
#   lane 1  lint -> rust-build -> rust-tests -> e2e -> soak-short
#   lane 2  tools -> deny -> build (arm64) -> test-deploy -> [rust-build] -> test-python -> schemathesis
#
# rust-build compiles every test binary, the server and the tract tool once, in the `local`
# profile; the parts after it run what it built. Lane 2 waits for it before test-python (the
# tract tool) and schemathesis (the server). e2e waits for lane 2's arm64 package. While
# `cargo test` runs, cargo holds target/local's lock, so nothing in lane 2 calls cargo on it.
#
# Each part's output goes to target/test-logs/<part>.log; a failing part prints its last lines.
# A failure stops its own lane; the other lane runs on, so one run reports every failure it can.
# The table of parts, with start times and durations, is printed at the end and written to
# target/test-logs/times.md.
set -uo pipefail
cd "$(dirname "$0")/.."

logs=target/test-logs
rm -rf "$logs"
mkdir -p "$logs"
times="$logs/times.tsv"
t0=$(date +%s)

# run PART COMMAND...: run one part, log and time it; the status is the part's.
run() {
  local part=$1 start rc
  shift
  start=$(date +%s)
  echo "[$(elapsed)] start  $part"
  "$@" >"$logs/$part.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\t%s\n' "$part" $((start - t0)) $(($(date +%s) - start)) "$rc" >>"$times"
  if [ "$rc" -eq 0 ]; then
    echo "[$(elapsed)] passed $part ($(($(date +%s) - start)) s)"
    touch "$logs/$part.passed"
  else
    echo "[$(elapsed)] FAILED $part ($(($(date +%s) - start)) s, exit $rc); its last lines:"
    tail -n 60 "$logs/$part.log" | sed "s/^/  $part | /"
    touch "$logs/$part.failed"
  fi
  return "$rc"
}

elapsed() {
  local s=$(($(date +%s) - t0))
  printf '%02d:%02d' $((s / 60)) $((s % 60))
}

# await PART: wait until the other lane's PART has passed; fail if it failed.
await() {
  until [ -e "$logs/$1.passed" ]; do
    if [ -e "$logs/$1.failed" ] || [ -e "$logs/lane$2.stopped" ]; then
      echo "[$(elapsed)] skipping the rest of lane $3: $1 did not pass"
      return 1
    fi
    sleep 2
  done
}

lane1() {
  run lint make --no-print-directory lint &&
    run rust-build make --no-print-directory rust-build &&
    run rust-tests make --no-print-directory rust-tests &&
    await build 2 1 &&
    run e2e make --no-print-directory e2e-run &&
    run soak-short make --no-print-directory soak-short-run
  local rc=$?
  [ "$rc" -eq 0 ] || touch "$logs/lane1.stopped"
  return "$rc"
}

lane2() {
  run tools make --no-print-directory tools &&
    run deny make --no-print-directory deny &&
    run build make --no-print-directory build &&
    run test-deploy make --no-print-directory test-deploy &&
    await rust-build 1 2 &&
    run test-python make --no-print-directory test-python-run &&
    run schemathesis make --no-print-directory schemathesis-run
  local rc=$?
  [ "$rc" -eq 0 ] || touch "$logs/lane2.stopped"
  return "$rc"
}

lane1 &
one=$!
lane2 &
two=$!
wait "$one"
rc1=$?
wait "$two"
rc2=$?

total=$(($(date +%s) - t0))
{
  echo "| part | lane | starts at | takes |"
  echo "|---|---:|---:|---:|"
  sort -t$'\t' -k2,2n "$times" | while IFS=$'\t' read -r part start secs rc; do
    case $part in
      lint | rust-build | rust-tests | e2e | soak-short) lane=1 ;;
      *) lane=2 ;;
    esac
    mark=""
    [ "$rc" -eq 0 ] || mark=" (failed)"
    printf '| %s%s | %s | %d:%02d | %d:%02d |\n' "$part" "$mark" "$lane" \
      $((start / 60)) $((start % 60)) $((secs / 60)) $((secs % 60))
  done
  printf '| **make test** | | | **%d:%02d** |\n' $((total / 60)) $((total % 60))
} >"$logs/times.md"
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
cat "$logs/times.md"
if [ "$rc1" -ne 0 ] || [ "$rc2" -ne 0 ]; then
  echo "make test failed: see the FAILED parts above and target/test-logs/"
  exit 1
fi
echo "make test passed in $((total / 60)) min $((total % 60)) s"
