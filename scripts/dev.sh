#!/usr/bin/env bash
# tornpool's one entry point for set-up and everyday commands.
#
#   bash scripts/dev.sh demo      set up, then serve the demo shop and pool dashboard on http://127.0.0.1:8888/
#   bash scripts/dev.sh test      set up, then run the test suite (C codec, then the pure twin)
#   bash scripts/dev.sh docs      set up, then build the docs site into build/docs/html (warnings are errors)
#   bash scripts/dev.sh bench     set up (with the peers), then run the benchmarks
#   bash scripts/dev.sh soak      set up, then run the 10-minute pool soak
#   bash scripts/dev.sh soak-failover   set up, then soak a primary + replicas through failovers
#   bash scripts/dev.sh fuzz      set up, then run the long codec fuzz under ASan/UBSan
#   bash scripts/dev.sh pymysql-suite   PyMySQL's own suite with and without greentor_compat's bridge
#   bash scripts/dev.sh tormysql-suite  TorMySQL's own tests against tornpool.tormysql
#   bash scripts/dev.sh django-suite    Django's own suite on greentor_compat.django's backend and on the stock one
#   bash scripts/dev.sh django-demo     set up, then serve the Django demo (ORM on Tornado) on http://127.0.0.1:8890/
#   bash scripts/dev.sh setup     only set up
#
# Set-up is idempotent and quick when nothing changed: a virtualenv in .venv,
# the package (editable, C codec built in place) with its test extras, --
# when no server is given by TORNPOOL_TEST_DSN and no mariadbd is installed --
# Debian's mariadb-server package, and likewise postgresql unless
# TORNPOOL_TEST_PG_DSN is set (the tests and the demo start throwaway servers
# from them; nothing is configured system-wide), and for `setup` and `test`,
# when missing, Debian's chromium and chromium-driver (the dashboard's browser
# test; it skips, saying why, where they cannot be installed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

log() { printf '[tornpool] %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        log "need root to run: $*"; return 1; fi
}

apt_install() {
    log "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

have_mariadbd() {
    command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 ||
        [ -x /usr/sbin/mariadbd ] || [ -x /usr/sbin/mysqld ] || [ -x /usr/libexec/mariadbd ]
}

have_postgres() {
    [ -n "${TORNPOOL_PG_BINDIR:-}" ] && [ -x "$TORNPOOL_PG_BINDIR/initdb" ] && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

ensure_server() {
    if [ -n "${TORNPOOL_TEST_DSN:-}" ]; then
        log "using the server at TORNPOOL_TEST_DSN"
    elif ! have_mariadbd; then
        apt_install mariadb-server
    fi
    # the executor pool's psycopg tests start throwaway PostgreSQL servers
    # (tornpool.testing.PostgresServer) from Debian's binaries
    if [ -n "${TORNPOOL_TEST_PG_DSN:-}" ]; then
        log "using the PostgreSQL server at TORNPOOL_TEST_PG_DSN"
    elif ! have_postgres; then
        apt_install postgresql
    fi
}

have_browser() {
    [ -x "${TORNPOOL_CHROMIUM:-/usr/bin/chromium}" ] && [ -x "${TORNPOOL_CHROMEDRIVER:-/usr/bin/chromedriver}" ]
}

# Headless Chromium for tests/test_dashboard_browser.py.  Required under
# CI=true (a CI run must not skip the browser test silently); elsewhere a
# failed install only makes that test skip.
ensure_browser() {
    have_browser && return 0
    if apt_install chromium chromium-driver && have_browser; then return 0; fi
    if [ "${CI:-}" = true ]; then
        log "could not install chromium and chromium-driver (needed by the browser test)"
        return 1
    fi
    log "could not install chromium and chromium-driver: the dashboard's browser test will skip"
}

ensure_venv() {
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3-venv python3-dev gcc
    fi
    [ -x "$PY" ] || python3 -m venv "$VENV"
}

# install_extras EXTRAS -- pip install -e .[EXTRAS] unless the inputs are unchanged.
install_package() {
    local extras="$1"
    local stamp="$VENV/.tornpool-installed-$extras"
    local digest
    digest="$(cat setup.py pyproject.toml | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        log "installing tornpool[$extras] into .venv"
        "$PY" -m pip install -q --upgrade pip >/dev/null
        # >=77 reads PEP 639 licence fields (mysqlclient 2.3); <82: see setup.py.
        "$PY" -m pip install -q "setuptools>=77,<82" wheel
        if [[ "$extras" == *bench* || "$extras" == *test* ]]; then
            # mysqlclient (tested under tornpool.dbapi, a peer in the benchmarks)
            # builds against libmariadb.
            pkg-config --exists libmariadb 2>/dev/null || apt_install libmariadb-dev pkg-config
        fi
        TORNPOOL_BUILD_EXT=0 "$PY" -m pip install -q --no-build-isolation -e ".[$extras]"
        echo "$digest" >"$stamp"
    fi
    build_codec
}

# Build the C codec in place.  Always from the .c file (never a stale build/).
build_codec() {
    local mode="${TORNPOOL_BUILD_EXT:-}"
    if [ "${CI:-}" = true ] && [ -z "$mode" ]; then mode=1; fi
    if [ "$mode" = 0 ]; then
        log "TORNPOOL_BUILD_EXT=0: using the pure-Python codec"
        return
    fi
    TORNPOOL_BUILD_EXT="$mode" "$PY" setup.py -q build_ext --inplace --force >/dev/null
    "$PY" -c 'import tornpool.codec as c; print("[tornpool] codec in use:", c.IMPL)' >&2
}

# setup [EXTRAS] [browser]
setup() {
    local extras="${1:-test}"
    ensure_venv
    install_package "$extras"
    ensure_server
    if [ "${2:-}" = browser ]; then ensure_browser; fi
}

cmd="${1:-help}"
shift || true
case "$cmd" in
setup) setup "${1:-test}" browser ;;
test)
    setup test browser
    # The whole suite with the C codec (the codec's own tests run both twins
    # in it), then the tests whose replies go through the codec -- the
    # connection, its cursors, every value type, the pool -- again with the
    # pure twin.  Arguments (e.g. -k, -x, a file) go to both runs; with a
    # file given, the second run is that file too.
    if "$PY" -c 'import sys, tornpool.codec as c; sys.exit(c.IMPL != "c")'; then
        log "test run 1/2: C codec"
        TORNPOOL_CODEC=c "$PY" -m pytest -p no:cacheprovider "$@"
        log "test run 2/2: pure-Python codec (TORNPOOL_CODEC=python) on the codec's paths"
        twin_tests=(tests/test_types.py tests/test_fastpath_parity.py tests/test_connection.py
                    tests/test_cursor_api.py tests/test_green.py tests/test_pool.py
                    tests/test_pool_session.py tests/test_pool_leases.py tests/test_pool_faults.py)
        for arg in "$@"; do
            case "$arg" in tests/*|*.py|*::*) twin_tests=() ;; esac
        done
        TORNPOOL_CODEC=python "$PY" -m pytest -p no:cacheprovider "${twin_tests[@]}" "$@"
    else
        log "the C codec is not built: testing the pure-Python codec only"
        TORNPOOL_CODEC=python "$PY" -m pytest -p no:cacheprovider "$@"
    fi
    ;;
demo)
    setup test
    exec "$PY" -m demos.app "$@"
    ;;
docs)
    setup test  # the test extras include the docs extras (the suite builds the site too)
    exec "$PY" -m sphinx -W --keep-going -b html docs build/docs/html "$@"
    ;;
bench)
    setup test,bench
    exec "$PY" -m bench "$@"
    ;;
soak)
    setup test
    exec "$PY" scripts/soak.py "$@"
    ;;
soak-failover)
    setup test
    exec "$PY" scripts/soak_failover.py "$@"
    ;;
fuzz)
    setup test
    exec bash fuzz/run_asan.sh "$@"
    ;;
pymysql-suite)
    setup test
    # both ends of the PyMySQL range by default; see scripts/pymysql_suite.py --help
    exec "$PY" scripts/pymysql_suite.py "$@"
    ;;
tormysql-suite)
    setup test
    # TorMySQL's tests/ from its repository; see scripts/tormysql_suite.py --help
    exec "$PY" scripts/tormysql_suite.py "$@"
    ;;
django-suite)
    setup test
    # downloads the installed Django's sdist once (~/.cache/tornpool/django); see scripts/django_suite.py --help
    exec "$PY" scripts/django_suite.py "$@"
    ;;
django-demo)
    setup test
    exec "$PY" -m demos.django_demo "$@"
    ;;
mypy)
    setup dev
    exec "$PY" -m mypy
    ;;
*)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    ;;
esac
