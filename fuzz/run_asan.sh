#!/bin/sh
# Long fuzz run of the C codec under AddressSanitizer + UndefinedBehaviorSanitizer
# (+ LeakSanitizer), compared against the pure-Python twin: decode_rows on
# PACKETS row packets, then ResponseReader/build_command on PACKETS/10 whole
# responses (fuzz/fuzz_reader.py).
#
#   fuzz/run_asan.sh [PACKETS] [SEED] [JOBS]     (defaults: 1000000 1 2)
#
# The extension is compiled into a scratch tree (never over the in-place
# build) with -fsanitize=address,undefined; Python itself is not
# instrumented, so libasan is LD_PRELOADed and PYTHONMALLOC=malloc routes every
# Python object through the sanitizer's allocator (so overruns of bytes/str
# objects are caught too).  CPython and its C-extension dependencies leave a
# fixed few KB unfreed at exit, which LeakSanitizer reports; the script
# therefore also runs a short baseline job and requires the long jobs to leak
# no more than it does, plus no leak report whose stack names _speedups.c or a part it includes.
# Reference leaks are also checked inside the fuzzer with tracemalloc.
# PACKETS are split over JOBS processes with seeds SEED, SEED+1, ...
set -eu
PACKETS=${1:-1000000}
SEED=${2:-1}
JOBS=${3:-2}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
CC=${CC:-gcc}
WORK=${WORK:-$(mktemp -d /tmp/tornpool-asan.XXXXXX)}
mkdir -p "$WORK/tree/tornpool/codec" "$WORK/logs"
: > "$WORK/tree/tornpool/__init__.py"
cp "$HERE/tornpool/codec/__init__.py" "$HERE/tornpool/codec/_pure.py" \
    "$HERE/tornpool/codec/_pure_reader.py" "$WORK/tree/tornpool/codec/"
INC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
"$CC" -shared -fPIC -O1 -g -std=c99 -Wall -Wextra -Wno-unused-parameter \
    -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
    -I"$INC" "$HERE/tornpool/codec/_speedups.c" \
    -o "$WORK/tree/tornpool/codec/_speedups$SUFFIX"
LIBASAN=$("$CC" -print-file-name=libasan.so)
LIBUBSAN=$("$CC" -print-file-name=libubsan.so)
echo "scratch tree: $WORK (logs in $WORK/logs)"
launch() {  # launch NAME PACKETS SEED
    LD_PRELOAD="$LIBASAN:$LIBUBSAN" \
    ASAN_OPTIONS="detect_leaks=1:exitcode=99:log_path=$WORK/logs/asan.$1" \
    LSAN_OPTIONS="exitcode=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=98:log_path=$WORK/logs/ubsan.$1" \
    PYTHONPATH="$WORK/tree" PYTHONMALLOC=malloc \
        "$PY" "$HERE/fuzz/fuzz_codec.py" --packets "$2" --seed "$3" \
        > "$WORK/logs/out.$1" 2> "$WORK/logs/err.$1"
}
leaked() {  # total bytes LeakSanitizer reported for log prefix $1
    cat "$WORK"/logs/asan."$1".* 2>/dev/null \
        | awk '/^SUMMARY: AddressSanitizer: [0-9]+ byte/{n+=$3} END{print n+0}'
}
launch baseline 20000 999 || true
per=$(( (PACKETS + JOBS - 1) / JOBS ))
pids=""
i=0
while [ "$i" -lt "$JOBS" ]; do
    s=$((SEED + i))
    launch "job$s" "$per" "$s" &
    pids="$pids $!"
    i=$((i + 1))
done
status=0
for p in $pids; do
    wait "$p" || status=$?
done
echo "--- results"
cat "$WORK"/logs/out.job* || true
grep -h "DIFF" "$WORK"/logs/err.* || true
crashes=$(cat "$WORK"/logs/asan.* "$WORK"/logs/ubsan.* 2>/dev/null | grep -c -E "ERROR: AddressSanitizer|runtime error" || true)
ours=$(cat "$WORK"/logs/asan.* 2>/dev/null | grep -c -E "codec/_(speedups\.c|[a-z_]+\.h)" || true)
base=$(leaked baseline)
total=0
i=0
while [ "$i" -lt "$JOBS" ]; do
    b=$(leaked "job$((SEED + i))")
    [ "$b" -gt "$total" ] && total=$b
    i=$((i + 1))
done
echo "sanitizer errors: $crashes"
echo "LeakSanitizer: largest per-job leak at exit $total bytes vs baseline (20k packets) $base bytes; stack frames in the codec sources: $ours"
echo "fuzzer exit status: $status"
[ "$status" -eq 0 ] && [ "$crashes" -eq 0 ] && [ "$ours" -eq 0 ] && [ "$total" -le $((base + 65536)) ]
