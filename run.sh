#!/usr/bin/env bash
# Set everything up on a fresh Debian machine, then run the kiosk or its tests.
#
#   ./run.sh demo      install what is missing, then start the demo kiosk
#   ./run.sh test      install what is missing, then run the whole test suite
#   sudo ./run.sh install [kiosk install options]
#                      install the kiosk on this store PC as a locked-down service
#                      (docs/install.md; --dry-run lists every file and command)
#
# Installs Debian packages (libzbar0 for the barcode decoder, a font that
# renders Chinese, Xvfb for machines without a display, Mesa's OpenGL for Kivy)
# with apt-get, creates .venv and installs the project into it. Re-running skips
# what is already there. Extra arguments go to `kiosk demo` or to pytest.
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(libzbar0 fonts-wqy-microhei xvfb xauth libgl1 libgl1-mesa-dri libegl1 libmtdev1)
# For the install tests: systemd-analyze verify on the units, and a real Xorg (dummy
# screen) started with the generated lockdown configuration.
TEST_APT_PACKAGES=(systemd kbd xserver-xorg-core xserver-xorg-video-dummy x11-xkb-utils x11-utils
                   x11-xserver-utils xdotool)
VENV=.venv

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "Python 3.11 or newer is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 1
}

ensure_system_packages() {
  local missing=() pkg wanted=("${APT_PACKAGES[@]}" "$@")
  local python; python=$(pick_python)
  # Debian splits venv/ensurepip out of the interpreter package.
  if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing+=("$(basename "$python")-venv")
  fi
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_venv() {
  local python; python=$(pick_python)
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $python"
    "$python" -m venv "$VENV"
  fi
  local stamp; stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$stamp" ]; then
    say "installing the kiosk and its Python packages into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    echo "$stamp" > "$VENV/.installed"
  fi
}

with_display() {
  if [ -n "${DISPLAY:-}" ]; then "$@"; else xvfb-run -a -s "-screen 0 1280x800x24" "$@"; fi
}

setup() { ensure_system_packages; ensure_venv; }

case "${1:-}" in
  demo)
    shift; setup
    say "starting the demo kiosk"
    with_display "$VENV/bin/kiosk" demo "$@"
    ;;
  test)
    shift; setup; ensure_system_packages "${TEST_APT_PACKAGES[@]}"
    export KIVY_NO_ARGS=1
    say "ruff (lint)"
    "$VENV/bin/ruff" check app devices tests bench seeds
    say "mypy (domain, services, storage, lane, runtime)"
    "$VENV/bin/mypy"
    say "pytest (all tests, slow ones included)"
    with_display "$VENV/bin/python" -m pytest "$@"
    ;;
  install)
    shift; setup
    say "installing the kiosk on this PC (kiosk install $*)"
    as_root "$VENV/bin/kiosk" install "$@"
    ;;
  *)
    echo "usage: ./run.sh demo | ./run.sh test [pytest arguments] | sudo ./run.sh install [options]" >&2
    exit 2
    ;;
esac
