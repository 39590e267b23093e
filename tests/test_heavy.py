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
