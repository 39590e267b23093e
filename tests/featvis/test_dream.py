import json

import numpy as np
import pytest
from PIL import Image

from actdb.featvis.dream import DreamConfig, dream
from tests.helpers import keras_reference

S = 32


@pytest.mark.slow
def test_seed_recipe_equals_an_independent_plain_tensorflow_loop(tmp_path):
    """The original write-up's steps, written out again here without actdb."""
    import keras
    import tensorflow as tf

    steps, step_size, channel, seed = 5, 0.1, 4, 3
    res = dream(DreamConfig(weights="random:0", size=S, steps=steps, step_size=step_size,
                            channel=channel, seed=seed, recipe="seed"), tmp_path / "a.png")

    base = keras_reference("VGG19", include_top=False, input_shape=(S, S, 3))
    part = keras.Model(base.input, base.get_layer("block5_conv4").output)
    start = np.random.RandomState(seed).randint(low=0, high=255, size=(S, S, 3), dtype=np.uint8)
    img = tf.convert_to_tensor(keras.applications.vgg19.preprocess_input(start))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(img)
            act = part(tf.expand_dims(img, axis=0))
            loss = tf.math.reduce_mean(act[:, :, :, channel])
        g = tape.gradient(loss, img)
        g /= tf.math.reduce_std(g)
        img = tf.clip_by_value(img + g * step_size, -1, 1)
    expected = tf.cast(255 * (img + 1.0) / 2.0, tf.uint8).numpy()

    saved = np.asarray(Image.open(res.image))
    np.testing.assert_array_equal(saved, expected)
    assert len(res.objective_per_step) == steps


@pytest.mark.slow
def test_improved_recipe_raises_the_channel_far_above_the_start(tmp_path):
    res = dream(DreamConfig(weights="random:0", size=64, steps=40, channel=4, seed=0),
                tmp_path / "b.png")
    assert res.final_activation > 5 * max(res.start_activation, 1e-6)
    assert res.objective_per_step[-1] > res.objective_per_step[0]
    img = Image.open(res.image)
    assert img.mode == "RGB" and img.size == (64, 64)
    side = json.loads((tmp_path / "b.json").read_text())
    assert side["config"]["recipe"] == "improved" and side["config"]["channel"] == 4
    assert len(side["objective_per_step"]) == 40 and side["model_fingerprint"]
    assert side["final_activation_of_saved_image"] == res.final_activation


@pytest.mark.slow
def test_neuron_objective(tmp_path):
    res = dream(DreamConfig(weights="random:0", size=S, steps=5, objective="neuron",
                            recipe="seed"), tmp_path / "c.png")
    assert len(res.objective_per_step) == 5 and Image.open(res.image).size == (S, S)
