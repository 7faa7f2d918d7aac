#!/usr/bin/env bash
# Installs the Debian packages fsclap needs (ffmpeg, espeak-ng, sox, chromium) when they are missing.
# As root it uses apt-get; otherwise it prints exactly what to install and fails.
set -euo pipefail
declare -A probe=([ffmpeg]=ffmpeg [espeak-ng]=espeak-ng [sox]=sox [chromium]=chromium [chromium-driver]=chromedriver)
missing=()
for pkg in "$@"; do
  cmd=${probe[$pkg]:-$pkg}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "error: missing system packages: ${missing[*]}" >&2
  echo "       install them, e.g.: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
