#!/usr/bin/env bash
# Installs everything the toolkit needs from this repository's own files.
#   bash scripts/setup.sh          runtime: a virtual environment in .venv with requirements.txt,
#                                  Debian's chromium (launch check, PNG figures) and nginx (python -m app serve)
#   bash scripts/setup.sh --test   also the test requirements
#                                  and PostgreSQL (answer-store tests), from Debian's packages
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_install() {
  # Debian packages, only when missing and only where we may install them.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: please install these Debian packages: ${missing[*]}" >&2
    return 0
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Chromium at run time too: the launch check fetches the participant page's pictures in it
# (study/media_probe.py) and Plotly's PNG export draws with it
apt_install chromium
# nginx: the reverse proxy of `python -m app serve` (a crowd study over several processes)
apt_install nginx
if [ $want_test -eq 1 ]; then
  apt_install postgresql r-base-core r-cran-ordinal r-cran-lme4
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
if [ $want_test -eq 1 ]; then
  .venv/bin/python -m pip install -q -r requirements-test.txt
fi
# the project itself, editable (pyproject.toml): `.venv/bin/python -m core|study|app` then
# works from any folder. Dependencies came from requirements.txt above; setuptools is
# taken from the venv when it has a recent one (no build-isolation download).
if .venv/bin/python -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 70)" 2>/dev/null; then
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
else
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q --no-deps -e .
fi
echo "setup: done"
