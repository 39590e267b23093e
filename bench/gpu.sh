#!/usr/bin/env bash
# GPU ingest benchmark: one command for a GPU machine (one H200, 16 cores), under 8 minutes.
#
# That machine has Python 3.12 with JAX (CUDA), PyTorch, Pillow, numpy, pyarrow, pandas, typer
# and rich, but no Keras, DuckDB, FAISS or network. Prepare the missing wheels here first:
#     bash bench/gpu_wheels.sh            # writes .whl/ (ignored by git, under 64 MiB)
# then run, from the repository root, on the GPU machine:
#     bash bench/gpu.sh                   # N=2000 bash bench/gpu.sh for a quicker look
# On a machine that already has actdb installed (this CPU machine included) the wheels are
# not needed and the script runs as is; bench/gpu.py --help lists the options.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import keras, duckdb, faiss" 2>/dev/null; then
  [ -d .whl ] || { echo "no Keras/DuckDB/FAISS and no .whl/: run bench/gpu_wheels.sh first" >&2; exit 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/actdb-site .whl/*.whl
  export PYTHONPATH="/tmp/actdb-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3 XLA_PYTHON_CLIENT_PREALLOCATE=false
exec python3 bench/gpu.py --images "${N:-20000}" "$@"
