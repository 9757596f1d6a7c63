#!/usr/bin/env bash
# Set up what the end-to-end tests (pytest -m e2e) need, next to finepose's own .venv:
#   * Label Studio (pinned) in its own virtualenv .venv-ls: its pins (Django, urllib3,
#     label-studio-sdk, ...) clash with finepose's, so it never shares .venv;
#   * playwright (Python) in the same .venv-ls, used only as a subprocess by
#     tests/support/browser.py to drive the system Chromium (no browser download: playwright is
#     pointed at /usr/bin/chromium through executable_path);
#   * Debian's chromium (apt-get; sudo only when not root).
# Safe to run again: every step is skipped when already done with the right version.
# Environment: PYTHON (interpreter for the venv, default python3), LS_SKIP_BROWSER=1 to skip
# chromium + playwright.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

LS_VERSION="1.23.2"
PLAYWRIGHT_VERSION="1.65.2"
VENV=.venv-ls
PYTHON=${PYTHON:-python3}
t0=$(date +%s)

# --- Chromium (system package) -------------------------------------------------------------
if [ "${LS_SKIP_BROWSER:-0}" != "1" ]; then
  if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null; then
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
    else
      echo "warning: no apt-get; install Chromium yourself (browser screenshot tests will skip)" >&2
    fi
  fi
fi

# --- Label Studio virtualenv ----------------------------------------------------------------
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
have() {  # have PACKAGE VERSION -> true when installed with exactly that version
  [ "$("$VENV/bin/python" - "$1" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
print(version(sys.argv[1]))
EOF
)" = "$2" ]
}
want=()
have label-studio "$LS_VERSION" || want+=("label-studio==$LS_VERSION")
if [ "${LS_SKIP_BROWSER:-0}" != "1" ]; then
  have playwright "$PLAYWRIGHT_VERSION" || want+=("playwright==$PLAYWRIGHT_VERSION")
fi
if [ ${#want[@]} -gt 0 ]; then
  # (grep drops the noise of pip's 'Location ... is ignored' warnings on machines whose pip.conf
  # names local indexes that are absent; pip's exit status is kept by pipefail)
  "$VENV/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2)
  "$VENV/bin/python" -m pip install -q "${want[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
fi
# Not `label-studio --version`: in 1.23 that migrates a database in ~/.local/share and then
# starts a server on 0.0.0.0:8080. Importing the package is enough to check the install.
"$VENV/bin/python" -c "import label_studio, sys; sys.exit(label_studio.__version__ != '$LS_VERSION')" \
  || { echo "Label Studio $LS_VERSION does not import from $VENV" >&2; exit 1; }
# --- a migrated empty database, copied by tests/support/label_studio.py for each test session ------
# (first start of a fresh Label Studio migrates ~50 s on 2 cores; from this copy it starts in ~5 s)
TEMPLATE="$VENV/finepose-template/$LS_VERSION/label_studio.sqlite3"
if [ ! -f "$TEMPLATE" ]; then
  work=$(mktemp -d "$ROOT/$VENV/template-XXXXXX")
  site=$("$VENV/bin/python" -c "import label_studio, os; print(os.path.dirname(label_studio.__file__))")
  (cd "$site" && env -u DJANGO_SETTINGS_MODULE LABEL_STUDIO_BASE_DATA_DIR="$work" COLLECT_ANALYTICS=false \
      LATEST_VERSION_CHECK=false SENTRY_DSN= FRONTEND_SENTRY_DSN= SECRET_KEY=template-only \
      "$ROOT/$VENV/bin/python" manage.py migrate --no-color -v0 >/dev/null)
  mkdir -p "$(dirname "$TEMPLATE")"
  mv "$work/label_studio.sqlite3" "$TEMPLATE"
  rm -rf "$work"
fi

echo "Label Studio $LS_VERSION is set up in $VENV ($(( $(date +%s) - t0 )) s)"
