#!/usr/bin/env bash
# `make test`: every check, in three lanes side by side, each part timed.
#
# On 2 cores a build keeps both busy, but much of `make test` is not a build: downloads and
# installs, tests that wait on moto, qemu, a browser or a sleep, and the shipped build's fat-LTO
# link, which runs on one core. So the parts run in three lanes that meet where one needs
# another's output (docs/testing.md has the plan and the times):
#
#   lane 1  rust-build, rust-tests, e2e, soak-short
#   lane 2  lambda-tools, build (arm64), test-deploy, test-python, schemathesis
#   lane 3  tools, lint, deny
#
# rust-build compiles every test binary, the server and the tract tool once, in the `local`
# profile; the parts after it run what it built. Lane 2 waits for it before test-python (the
# tract tool) and schemathesis (the server); e2e waits for lane 2's arm64 package. While
# `cargo test` runs, cargo holds target/local's lock, so nothing in lane 2 calls cargo on it.
#
# Each part's output goes to target/test-logs/<part>.log; a failing part prints its last lines.
# A part runs when the parts it needs have passed, and is skipped otherwise: one failure skips
# only what depends on it, so one run reports every failure it can.
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

# part PART NEEDS COMMAND...: run PART once every part in NEEDS (space-separated, from either
# lane) has passed; a part whose needs failed or were skipped is skipped, not run.
part() {
  local name=$1 needs=$2 need
  shift 2
  for need in $needs; do
    until [ -e "$logs/$need.passed" ]; do
      if [ -e "$logs/$need.failed" ] || [ -e "$logs/$need.skipped" ]; then
        echo "[$(elapsed)] skip   $name: $need did not pass"
        printf '%s\t%s\t%s\t%s\n' "$name" $(($(date +%s) - t0)) 0 skipped >>"$times"
        touch "$logs/$name.skipped"
        return 1
      fi
      sleep 2
    done
  done
  run "$name" "$@"
}

m() { make --no-print-directory "$@" </dev/null; }

# The lanes. Each part names only what it really needs, so one failure skips only what depends
# on it. Both builds start at once (lane 2 needs only cargo-lambda), while lane 3 installs the
# rest, which waits on the network more than on the cores, then lint and deny, off the path the
# builds and the tests make. e2e waits for test-deploy, not only for build: `sam build`
# rewrites the bootstrap in place, and qemu must not run a file that is being copied over.
# soak-short, the one part that measures, runs when the others have finished.
lane1() {
  part rust-build "" m rust-build
  part rust-tests "rust-build tools" m rust-tests
  part e2e "rust-build tools test-deploy" m e2e-run
  part soak-short "rust-build tools schemathesis deny" m soak-short-run
}

lane2() {
  part lambda-tools "" m lambda-tools
  part build "lambda-tools" m build
  part test-deploy "build tools" m test-deploy-run
  part test-python "tools rust-build" m test-python-run
  part schemathesis "tools rust-build" m schemathesis-run
}

lane3() {
  part tools "lambda-tools" m tools
  part lint "" m lint LINT_TARGET_DIR=target/lint
  part deny "" m deny
}

# Ctrl-C or a kill stops both lanes and everything they started.
trap 'trap - INT TERM; kill 0' INT TERM
lane1 &
lane2 &
lane3 &
wait

total=$(($(date +%s) - t0))
{
  echo "| part | lane | starts at | takes |"
  echo "|---|---:|---:|---:|"
  sort -t$'\t' -k2,2n "$times" | while IFS=$'\t' read -r part start secs rc; do
    case $part in
      rust-build | rust-tests | e2e | soak-short) lane=1 ;;
      tools | lint | deny) lane=3 ;;
      *) lane=2 ;;
    esac
    mark=""
    case $rc in
      0) ;;
      skipped) mark=" (skipped)" ;;
      *) mark=" (failed)" ;;
    esac
    printf '| %s%s | %s | %d:%02d | %d:%02d |\n' "$part" "$mark" "$lane" \
      $((start / 60)) $((start % 60)) $((secs / 60)) $((secs % 60))
  done
  printf '| **make test** | | | **%d:%02d** |\n' $((total / 60)) $((total % 60))
} >"$logs/times.md"
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
cat "$logs/times.md"
if ls "$logs"/*.failed "$logs"/*.skipped >/dev/null 2>&1; then
  echo "make test failed: see the FAILED and skipped parts above and target/test-logs/"
  exit 1
fi
echo "make test passed in $((total / 60)) min $((total % 60)) s"
