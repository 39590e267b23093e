"""Fetching a dataset by name: download through Keras' cache, verification, extraction,
ingest; a corrupted archive is refused; no network is one clear line."""

import contextlib
import functools
import hashlib
import http.server
import io
import tarfile
import threading

import pytest

import actdb
from actdb.errors import DatasetError
from actdb.ingest.datasets import fetch
from tests.helpers import SIZE, WEIGHTS, class_image

WNIDS = ("n01440764", "n02102040")  # tench, English springer: two of Imagenette's ten


def tiny_imagenette(path):
    """imagenette2-160/{train,val}/<wnid>/*.JPEG as a .tgz; returns its md5."""
    with tarfile.open(path, "w:gz") as tar:
        for split, n in (("train", 3), ("val", 1)):
            for c, wnid in enumerate(WNIDS):
                for i in range(n):
                    buf = io.BytesIO()
                    class_image(c, i).save(buf, "JPEG")
                    info = tarfile.TarInfo(f"imagenette2-160/{split}/{wnid}/{wnid}_{i}.JPEG")
                    info.size = len(buf.getvalue())
                    tar.addfile(info, io.BytesIO(buf.getvalue()))
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324


@contextlib.contextmanager
def serving(folder):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


@pytest.mark.slow
def test_imagenette_is_downloaded_verified_extracted_and_ingested(tmp_path, keras_home,
                                                                  monkeypatch):
    (tmp_path / "www").mkdir()
    md5 = tiny_imagenette(tmp_path / "www" / "imagenette2-160.tgz")
    with serving(tmp_path / "www") as url:
        monkeypatch.setenv("ACTDB_DATASET_URL_IMAGENETTE_160",
                           f"{url}/imagenette2-160.tgz#md5={md5}")
        res = actdb.open(tmp_path / "s").ingest("imagenette-160", weights=WEIGHTS,
                                                image_size=SIZE, precision="fp32")
    assert res.layout == "splits" and res.ingested == 8
    imgs = actdb.open(tmp_path / "s").images()
    assert set(imgs.class_name) == {"tench", "English_springer"}
    assert (keras_home / "datasets" / "imagenette2-160" / "val").is_dir()
    # fetched once: the next run finds the folder, with no server
    assert fetch("imagenette-160") == keras_home / "datasets" / "imagenette2-160"


@pytest.mark.slow  # hashes a large archive: ~8 s
def test_a_corrupted_archive_is_refused_and_deleted(tmp_path, keras_home, monkeypatch):
    (tmp_path / "www").mkdir()
    tiny_imagenette(tmp_path / "www" / "imagenette2-160.tgz")
    with serving(tmp_path / "www") as url:
        monkeypatch.setenv("ACTDB_DATASET_URL_IMAGENETTE_160",
                           f"{url}/imagenette2-160.tgz#md5={'0' * 32}")
        with pytest.raises(DatasetError, match="not the published"):
            fetch("imagenette-160")
    assert not (keras_home / "datasets" / "imagenette2-160.tgz").exists()
    assert not (keras_home / "datasets" / "imagenette2-160").exists()  # nothing extracted


@pytest.mark.slow  # Keras' download retries a refused connection: ~10 s
def test_without_network_it_says_where_to_put_the_archive(keras_home, monkeypatch, capsys):
    monkeypatch.setenv("ACTDB_DATASET_URL_IMAGENETTE_160",
                       "http://127.0.0.1:9/imagenette2-160.tgz#md5=" + "0" * 32)
    with pytest.raises(DatasetError, match="put imagenette2-160.tgz") as e:
        fetch("imagenette-160")
    assert capsys.readouterr().out == ""  # Keras' "Downloading data from" went to stderr
    assert str(keras_home / "datasets") in str(e.value) and "\n" not in str(e.value)
    monkeypatch.setenv("ACTDB_DATASET_URL_IMAGENETTE_160", "http://127.0.0.1:9/x.tgz")
    with pytest.raises(DatasetError, match="must carry its checksum"):
        fetch("imagenette-160")
