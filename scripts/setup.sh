#!/usr/bin/env bash
# Installs what the platform needs on a Debian machine: PyTorch for the trainer (Debian's
# packages, for /usr/bin/python3), the Node.js packages, and a build of the server.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${FLASH_TRAINER_PYTHON:-/usr/bin/python3}"
debian_packages=(python3-torch python3-torchvision python3-pytest python3-onnx fonts-dejavu-core)

if ! "$python" -c 'import torch, torchvision, pytest, onnx' >/dev/null 2>&1 || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "Installing ${debian_packages[*]} from Debian (trainer and chart dependencies)…"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${debian_packages[@]}" >/dev/null
  else
    echo "warning: no apt-get here; install PyTorch and torchvision for $python yourself" >&2
  fi
fi

npm ci --no-audit --no-fund
npm run build
