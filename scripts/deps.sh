#!/usr/bin/env bash
# Checks that the Debian packages needed to build and test childproc are
# installed. Run as root on a machine with apt-get, it installs the missing
# ones without asking. Otherwise it prints the command that installs them
# and exits 1.
#
# The tests that talk to a real Node.js process need `node`. These machines
# ship it outside Debian's packages, so a missing `node` is reported but
# neither installed nor treated as an error.
set -euo pipefail

packages=(
  make
  cmake
  pkg-config
  gcc
  clang
  libuv1-dev
  libcjson-dev
  libcmocka-dev
  valgrind
  python3
)

is_installed() {
  local status
  status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
  [[ $status == installed ]]
}

missing_packages() {
  local package
  for package in "${packages[@]}"; do
    is_installed "$package" || printf '%s\n' "$package"
  done
}

check_node() {
  local version
  if version=$(node --version 2>/dev/null); then
    echo "deps: node $version"
  else
    echo "deps: warning: node not found; the tests that talk to a real" \
      "Node.js process need it on PATH" >&2
  fi
}

install_packages() {
  echo "deps: installing: $*"
  export DEBIAN_FRONTEND=noninteractive
  # A failed index refresh (one unreachable source, say) need not stop the
  # install: the lists already on the machine may have the packages, and
  # apt-get install reports it if they do not.
  if ! apt-get update </dev/null; then
    echo "deps: warning: apt-get update failed; trying the install anyway" >&2
  fi
  apt-get install -y --no-install-recommends "$@" </dev/null
}

main() {
  check_node

  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: dpkg-query not found, so packages cannot be checked on this" \
      "system; the build needs: ${packages[*]}" >&2
    return 0
  fi

  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]} == 0)); then
    echo "deps: all ${#packages[@]} packages installed"
    return 0
  fi

  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    install_packages "${missing[@]}"
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
      echo "deps: all ${#packages[@]} packages installed"
      return 0
    fi
    echo "deps: still missing after apt-get install: ${missing[*]}" >&2
    return 1
  fi

  local sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo "
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them with:" >&2
  echo "  ${sudo}apt-get install -y --no-install-recommends ${missing[*]}" >&2
  return 1
}

main "$@"
