import concurrent.futures

import numpy as np
import pytest

from actdb.models.batching import BatchingEmbedder
from actdb.models.embed import EmbedConfig, Embedder
from tests.helpers import class_image


@pytest.mark.slow
def test_concurrent_requests_share_forward_passes_and_get_their_own_vectors():
    emb = Embedder(EmbedConfig(weights="random:0", image_size=32, precision="fp32"))
    images = [np.asarray(class_image(i % 3, i).resize((32, 32)))[None] for i in range(16)]
    alone = [emb.embed(x) for x in images]
    calls = []
    inner_embed = emb.embed

    def counting(x):
        calls.append(len(x))
        return inner_embed(x)

    emb.embed = counting
    batching = BatchingEmbedder(emb, max_batch=8, wait_s=0.05)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        got = list(pool.map(batching.embed, images))
    for a, g in zip(alone, got, strict=True):
        np.testing.assert_allclose(g, a, rtol=1e-5, atol=1e-7)
    assert sum(calls) == 16 and len(calls) < 16  # fewer forward passes than requests
    assert batching.dim == 512 and batching.config.image_size == 32
