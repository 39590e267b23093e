"""The Ray engine against the local engine: one local Ray shared by these tests (started here,
shut down at the end), each test with a timeout; a driver killed with SIGKILL runs in its own
process group, which the test kills afterwards."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import actdb
from actdb.errors import StoreMismatch, UsageError
from actdb.ingest.pipeline import IngestConfig, ingest
from actdb.ingest.ray_engine import EmbedActor, RayConfig, RayEngine, _init
from actdb.models.embed import EmbedConfig
from tests.helpers import SIZE, add_bad_files, make_tree

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a Ray cluster and model actors
KW = dict(weights="random:0", image_size=SIZE, precision="fp32", batch_size=8,
          rows_per_shard=8)


@pytest.fixture(scope="module")
def cluster():
    _init(ray, None)  # as an ingest without --ray-address starts it
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def same_store(a, b) -> None:
    da, db = actdb.open(a), actdb.open(b)
    ia, va = da.space().vectors()
    ib, vb = db.space().vectors()
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-7)
    cols = ["image_id", "path", "split", "synset", "class_name", "width", "height", "bytes"]
    assert da.images()[cols].equals(db.images()[cols])
    q = "SELECT path, reason FROM failures ORDER BY path"
    assert da.sql(q).to_pylist() == db.sql(q).to_pylist()


@pytest.mark.timeout(600)
def test_ray_embeds_several_layers_and_fills_an_added_one_as_the_local_engine(cluster,
                                                                             tmp_path):
    root = make_tree(tmp_path / "data", per_class=3)
    for engine in ("local", "ray"):
        with actdb.open(tmp_path / engine) as db:
            db.ingest(root, engine=engine, layers="block4_conv4,block5_conv4", **KW)
            res = db.ingest(root, engine=engine, layer="block3_conv4", **KW)  # a fill
            assert (res.ingested, res.skipped) == (0, 9)
    for space in ("block3_conv4", "block4_conv4", "block5_conv4"):
        ia, va = actdb.open(tmp_path / "local").space(space).vectors()
        ib, vb = actdb.open(tmp_path / "ray").space(space).vectors()
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-6)


def crash_once_actor(marker: str):
    """A model actor that dies on its second batch the first time (Ray pickles this class by
    value, so its processes need no test module)."""

    class CrashOnce(EmbedActor):
        def __call__(self, batch: dict) -> dict:
            self.batches = getattr(self, "batches", 0) + 1
            if self.batches == 2 and not os.path.exists(marker):
                open(marker, "w").close()  # noqa: SIM115 - closed at once; then die
                os._exit(1)
            return super().__call__(batch)

    return CrashOnce


@pytest.mark.timeout(600)
def test_a_model_actor_that_dies_is_replaced_and_nothing_is_lost_or_doubled(cluster, tmp_path):
    root = make_tree(tmp_path / "data", per_class=8)
    marker = tmp_path / "crashed"
    cfg = IngestConfig(root=root, store=tmp_path / "ray", engine="ray", batch_size=8,
                       rows_per_shard=8, embed=EmbedConfig(weights="random:0", image_size=SIZE,
                                                           precision="fp32"))
    engine = RayEngine(RayConfig(), batch_size=8, rows_per_shard=8,
                       actor=crash_once_actor(str(marker)))
    res = ingest(cfg, engine=engine)  # faults come in through the engine seam
    assert marker.exists()  # the actor did die (on its second batch)
    assert res.ingested == 24
    actdb.open(tmp_path / "local").ingest(root, **KW)
    same_store(tmp_path / "local", tmp_path / "ray")


@pytest.mark.timeout(600)
def test_engines_append_to_each_others_stores_bad_files_included_and_refuse_mismatches(
        cluster, tmp_path):
    """A store begun by one engine and continued by the other equals the store begun the
    other way round: vectors, rows and the bad files recorded by each engine."""
    root = make_tree(tmp_path / "data", per_class=3)
    more = make_tree(tmp_path / "data", classes=("n01443537",), per_class=3)
    assert more == root
    first = tmp_path / "data1"
    bad = add_bad_files(make_tree(first, per_class=3) / "n01440764")
    a = actdb.open(tmp_path / "a").ingest(first, **KW)  # local, then ray
    actdb.open(tmp_path / "a").ingest(root, engine="ray", **KW)
    b = actdb.open(tmp_path / "b").ingest(first, engine="ray", **KW)  # ray, then local
    actdb.open(tmp_path / "b").ingest(root, **KW)
    assert (b.ingested, b.failed) == (a.ingested, a.failed) and a.failed == len(bad)
    same_store(tmp_path / "a", tmp_path / "b")
    runs = actdb.open(tmp_path / "b").sql("SELECT options FROM runs ORDER BY run_id")
    assert ['"engine": "ray"' in r["options"] for r in runs.to_pylist()] == [True, False]
    with pytest.raises(StoreMismatch):
        actdb.open(tmp_path / "a").ingest(root, engine="ray",
                                          **{**KW, "image_size": SIZE * 2})


DRIVER = textwrap.dedent("""
    import sys
    import actdb
    actdb.open(sys.argv[2]).ingest(sys.argv[1], engine="ray", ray_address=sys.argv[3],
                                   weights="random:0", image_size={size}, precision="fp32",
                                   batch_size=8, rows_per_shard=8)
""")


@pytest.mark.timeout(900)
def test_a_killed_driver_then_a_rerun_gives_every_image_exactly_once(cluster, tmp_path):
    root = make_tree(tmp_path / "data", per_class=30)
    store = tmp_path / "ray"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(size=SIZE))
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(store), cluster],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            shards = list((store / "activations").glob("part-*.parquet"))
            if len(shards) >= 2:  # some commits are in
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the driver finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver's whole process group
        proc.wait(timeout=30)
    partial = actdb.open(store).count()
    assert 0 < partial < 90
    res = actdb.open(store).ingest(root, engine="ray", ray_address=cluster, **KW)
    assert res.skipped == partial and res.ingested == 90 - partial
    actdb.open(tmp_path / "local").ingest(root, **KW)
    same_store(tmp_path / "local", store)


def _token() -> str:
    """The local cluster's token, where Ray looks for it."""
    from pathlib import Path

    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"]
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token")
                ).read_text().strip()


@pytest.mark.timeout(120)
def test_a_local_ray_takes_only_requests_that_carry_its_token(cluster):
    """Ray 2.60 listens on every interface; a request without the token is refused by the GCS
    and by the raylet, on loopback and on the machine's address alike. No dashboard."""
    import grpc
    from ray.core.generated import (
        gcs_service_pb2,
        gcs_service_pb2_grpc,
        node_manager_pb2,
        node_manager_pb2_grpc,
    )

    node = ray.nodes()[0]
    assert not ray._private.worker.global_worker.node.address_info.get("webui_url")
    gcs_port = int(cluster.rsplit(":", 1)[1])
    calls = [(gcs_port, lambda ch, **kw: gcs_service_pb2_grpc.NodeInfoGcsServiceStub(
                  ch).GetAllNodeInfo(gcs_service_pb2.GetAllNodeInfoRequest(), **kw)),
             (node["NodeManagerPort"], lambda ch, **kw: node_manager_pb2_grpc
              .NodeManagerServiceStub(ch).GetNodeStats(node_manager_pb2.GetNodeStatsRequest(),
                                                       **kw))]
    auth = (("authorization", f"Bearer {_token()}"),)
    for host in {"127.0.0.1", node["NodeManagerAddress"]}:
        for port, call in calls:
            with grpc.insecure_channel(f"{host}:{port}") as ch:
                with pytest.raises(grpc.RpcError) as refused:
                    call(ch, timeout=20)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (host, port)
                call(ch, timeout=20, metadata=auth)  # the token's holder is answered


def test_a_local_ray_without_authentication_is_refused(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(UsageError, match="RAY_AUTH_MODE=disabled .* --ray-address"):
        _init(ray, None)


def test_the_ray_options_need_the_ray_engine(tmp_path):
    with pytest.raises(actdb.ActdbError, match="need engine ray"):
        actdb.open(tmp_path / "s").ingest(tmp_path, actors=2, **KW)
    with pytest.raises(actdb.ActdbError, match="engine must be one of local, ray"):
        actdb.open(tmp_path / "s").ingest(tmp_path, engine="spark", **KW)


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    root = make_tree(tmp_path / "data", per_class=1)
    with pytest.raises(actdb.ActdbError, match=r"pip install 'actdb\[ray\]'"):
        actdb.open(tmp_path / "s").ingest(root, engine="ray", **KW)
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").iterdir())
