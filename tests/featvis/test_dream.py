import json

import numpy as np
import pytest
from PIL import Image

import actdb
from actdb.featvis.dream import DreamConfig, dream
from tests.helpers import keras_reference

S = 32


@pytest.mark.slow
def test_seed_recipe_equals_an_independent_plain_tensorflow_loop(tmp_path):
    """The original write-up's steps, written out again here without actdb."""
    import keras
    import tensorflow as tf

    steps, step_size, channel, seed = 5, 0.1, 4, 3
    res = dream(DreamConfig(weights="random:0", image_size=S, steps=steps, step_size=step_size,
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
    res = dream(DreamConfig(weights="random:0", image_size=64, steps=40, channel=4, seed=0),
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
    res = dream(DreamConfig(weights="random:0", image_size=S, steps=5, objective="neuron",
                            recipe="seed"), tmp_path / "c.png")
    assert len(res.objective_per_step) == 5 and Image.open(res.image).size == (S, S)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["improved", "seed"])
def test_a_batch_gives_each_channel_what_its_own_run_gives(tmp_path, recipe):
    from actdb.featvis.dream import dream_batch

    cfg = DreamConfig(weights="random:0", image_size=S, steps=6, seed=2, recipe=recipe)
    channels = [4, 17, 100, 311]
    batch = dream_batch(cfg, channels, [tmp_path / f"b{c}.png" for c in channels])
    for ch, got in zip(channels, batch, strict=True):
        own = dream(DreamConfig(**{**cfg.__dict__, "channel": ch}), tmp_path / f"s{ch}.png")
        a = np.asarray(Image.open(got.image), np.float64)
        b = np.asarray(Image.open(own.image), np.float64)
        assert np.abs(a - b).max() <= 2, (ch, np.abs(a - b).max())  # float tolerance
        np.testing.assert_allclose(got.objective_per_step, own.objective_per_step, rtol=1e-3,
                                   atol=1e-6)
        assert got.config["channel"] == ch


@pytest.mark.slow
def test_in_a_store_dream_takes_the_stores_network_and_says_so(built_store, tmp_path):
    """After a random:0 / 32 px ingest, the README's `actdb dream --channel 4 -o node4.png`
    dreams with that network, not ImageNet weights at 224 px."""
    from typer.testing import CliRunner

    from actdb.cli import app

    out = tmp_path / "node4.png"
    res = CliRunner().invoke(app, ["dream", "--channel", "4", "-o", str(out), "--steps", "2",
                                   "--store", str(built_store)])
    assert res.exit_code == 0, res.output
    assert "note: the store's network" in res.stderr and "weights random:0, 32 px" in res.stderr
    config = json.loads(out.with_suffix(".json").read_text())["config"]
    assert (config["model"], config["layer"], config["weights"], config["image_size"]) == (
        "vgg19", "block5_conv4", "random:0", 32)
    other = actdb.open(built_store).space().dream(tmp_path / "o.png", channel=1, steps=1,
                                                  weights="random:1")
    assert (other.config["weights"], other.config["image_size"]) == ("random:1", 32)
