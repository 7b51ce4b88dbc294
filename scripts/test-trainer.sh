#!/usr/bin/env bash
# The trainer's own tests (tiny generated jobs, real trainer processes, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${FLASH_TRAINER_PYTHON:-/usr/bin/python3}" -m pytest trainer/tests -q -p no:cacheprovider "$@"
