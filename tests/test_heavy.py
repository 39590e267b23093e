"""The library keeps third-party C++ chatter off stderr, and nothing else: each check runs in a
fresh interpreter, since what is tested is file descriptor 2 itself."""

import subprocess
import sys

import pytest


def _stderr(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    return res.stderr


def test_quietly_drops_notices_and_replays_everything_else():
    err = _stderr(
        "import os\n"
        "from actdb.heavy import quietly\n"
        "with quietly():\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called "
        "are written to STDERR\\n')\n"
        "    os.write(2, b'I0000 00:00:1.5   7 cudart_stub.cc:31] Could not find cuda\\n')\n"
        "    os.write(2, b'E0000 00:00:1.6   7 cuda_platform.cc:52] failed call to cuInit\\n')\n"
        "    os.write(2, b'E0000 00:00:1.7   7 saver.cc:9] could not open checkpoint\\n')\n"
        "    os.write(2, b'a real error\\n')\n")
    assert err == ("E0000 00:00:1.7   7 saver.cc:9] could not open checkpoint\n"
                   "a real error\n")


def test_everything_shows_when_asked():
    err = _stderr("import os\n"
                  "from actdb import heavy\n"
                  "heavy.quiet_imports(False)\n"
                  "with heavy.quietly():\n"
                  "    os.write(2, b'I0000 00:00:1.5   7 port.cc:153] oneDNN custom ops\\n')\n")
    assert "oneDNN" in err


@pytest.mark.slow
def test_the_first_model_use_from_python_writes_nothing_on_stderr():
    err = _stderr("import numpy as np\n"
                  "from actdb.models.embed import EmbedConfig, Embedder\n"
                  "e = Embedder(EmbedConfig(weights='random:0', image_size=32))\n"
                  "assert e.embed(np.zeros((1, 32, 32, 3), np.uint8)).shape == (1, 512)\n")
    assert err == "", err


@pytest.mark.slow
def test_one_process_holds_a_keras_and_a_torchvision_network_and_refuses_a_crash():
    """triton's library loaded after TensorFlow segfaults the process: actdb loads it first,
    and where the user imported TensorFlow first, a torchvision network is a one-line
    error, not a crash."""
    pytest.importorskip("torchvision")
    code = ("import numpy as np\n"
            "from actdb.models.embed import EmbedConfig, build_embedder\n"
            "x = np.zeros((2, 32, 32, 3), np.uint8)\n"
            "for model in ('vgg19', 'torchvision:resnet18'):\n"
            "    build_embedder(EmbedConfig(model=model, weights='random:0', image_size=32,"
            " precision='fp32')).embed(x)\n"
            "print('both ran')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "both ran" in res.stdout, res.stderr[-2000:]
    first = subprocess.run([sys.executable, "-c", "import tensorflow\n" + code],
                           capture_output=True, text=True, timeout=300)
    if "triton" not in subprocess.run([sys.executable, "-m", "pip", "list"],
                                      capture_output=True, text=True).stdout:
        pytest.skip("no triton installed: nothing to refuse")
    assert first.returncode == 1 and "TensorFlow was imported before" in first.stderr
