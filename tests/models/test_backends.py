"""Vectors do not depend on Keras' backend: JAX agrees with TensorFlow, and a store made with
one accepts queries embedded with the other (the fingerprint has no backend in it)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import class_image

pytestmark = pytest.mark.slow  # each case starts Python with another Keras backend

EMBED = """
import sys, numpy as np
from actdb.models.embed import EmbedConfig, Embedder, backend
x = np.load(sys.argv[1])
for model in ("vgg19", "mobilenet"):
    e = Embedder(EmbedConfig(model=model, weights="random:0", image_size=32, precision="fp32"))
    np.save(f"{sys.argv[2]}/{model}.npy", e.embed(x))
    print(backend(), e.fingerprint)
"""


def _run(backend: str, args: list[str]):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_jax_vectors_equal_tensorflow_vectors(tmp_path):
    from actdb.models.embed import EmbedConfig, Embedder

    x = np.stack([np.asarray(class_image(i, i).resize((32, 32))) for i in range(3)])
    np.save(tmp_path / "x.npy", x)
    out = _run("jax", ["-c", EMBED, str(tmp_path / "x.npy"), str(tmp_path)])
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines[0] == "jax"
    for i, model in enumerate(("vgg19", "mobilenet")):
        tf = Embedder(EmbedConfig(model=model, weights="random:0", image_size=32,
                                  precision="fp32"))
        got = np.load(tmp_path / f"{model}.npy")
        assert lines[2 * i + 1] == tf.fingerprint
        np.testing.assert_allclose(got, tf.embed(x), rtol=0, atol=1e-4 * np.abs(got).max())


def test_a_tensorflow_store_answers_a_jax_query(built_store, tmp_path):
    import shutil

    import actdb

    built_store = shutil.copytree(built_store, tmp_path / "store")
    q = tmp_path / "q.png"
    class_image(2, 9).save(q)
    want = actdb.open(built_store).space().nearest(str(q), k=4, names=["tf"]).neighbors
    out = _run("jax", ["-m", "actdb", "nearest", str(q), "-k", "4", "--name", "jx",
                       "--store", str(built_store), "--json"])
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)["queries"][0]
    assert got["context"]["cached"] is True  # same content, same fingerprint: the cache hit
    assert [n["image_id"] for n in got["neighbors"]] == want.image_id.tolist()
    q2 = tmp_path / "q2.png"
    class_image(0, 11).save(q2)  # new content: JAX runs the model
    out = _run("jax", ["-m", "actdb", "nearest", str(q2), "-k", "4", "--store",
                       str(built_store), "--json"])
    assert out.returncode == 0 and json.loads(out.stdout)["queries"][0]["context"][
        "cached"] is False, out.stderr[-2000:]
    # TF reads its cache
    assert actdb.open(built_store).space().nearest(str(q2), k=4).context.cached[0]
