"""``actdb ingest --engine ray``: the same ingest on Ray Data, across the cores of a machine or
the machines of a cluster.

The driver does what the local engine does around the model: layout, selection, the store's
writer lock, resume (paths already committed), the run record, and afterwards the index and
the statistics. Only ``(seq, path)`` rows travel to Ray. Decoding runs as CPU tasks with
actdb's own decoder (a bad file becomes a row with an ``error``, never an exception); the
model runs in actors, each building the store's embedder once and refusing to embed if its
fingerprint is not the manifest's; Ray restarts an actor that dies and retries its batch.
Results come back in listing order (``preserve_order``) and the driver commits them through
the store's writer, skipping any path already committed, so ids, vectors and failures equal
the local engine's and a retried task cannot duplicate a row.

With no address (``--ray-address``, ``$RAY_ADDRESS``) a local Ray is started with the
machine's CPUs and shut down at the end; a Ray already initialised in the process is used
as it is. A local Ray has no dashboard and takes only requests that carry its token (Ray's
token authentication, on by default for local clusters since Ray 2.59): Ray 2.60 binds its
GCS, raylet and workers to every interface whatever the node address, so the token is what
keeps the job and task APIs from the network. actdb refuses to start one with authentication
turned off (``RAY_AUTH_MODE=disabled``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from actdb.errors import IngestFailed, UsageError
from actdb.heavy import quietly

#: Rows of (seq, path) per block handed to Ray: small enough to spread over the decoders.
BLOCK_ROWS = 256


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """How the Ray engine uses the cluster. None: decided from the cluster's resources."""

    address: str | None = None
    actors: int | None = None
    actor_cpus: float | None = None
    actor_gpus: float | None = None


def _ray():
    try:
        with quietly():  # Ray's C++ logging announces itself on import
            import ray
    except ImportError:
        raise UsageError("the Ray engine needs Ray Data: pip install 'actdb[ray]' (or "
                         "pip install 'ray[data]')") from None
    return ray


def _init(ray, address: str | None) -> None:
    """Connect to the cluster at ``address``, or start a local one: no dashboard, token
    authentication, the node on 127.0.0.1; Ray's own start-up logs dropped."""
    if address:
        kwargs = {"address": address}
    elif os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise UsageError("RAY_AUTH_MODE=disabled would let anyone on the network run code on "
                         "the local Ray this ingest starts; unset it, or start a cluster "
                         "yourself and give its address with --ray-address")
    else:
        kwargs = {"num_cpus": os.cpu_count(), "include_dashboard": False,
                  "_node_ip_address": "127.0.0.1"}
    with quietly():
        ray.init(log_to_driver=False, logging_level="ERROR", **kwargs)


def _decode(batch: dict, size: int, resize: str, root: str) -> dict:
    """A Ray task: decode a block of files with actdb's decoder; bad files become errors."""
    from actdb.errors import ImageError
    from actdb.images import decode_files

    paths = [str(Path(root) / p) for p in batch["path"]]
    n = len(paths)
    out = {"seq": np.asarray(batch["seq"], np.int64),
           "image": np.zeros((n, size, size, 3), np.uint8),
           "width": np.zeros(n, np.int32), "height": np.zeros(n, np.int32),
           "nbytes": np.zeros(n, np.int64), "error": np.full(n, "", dtype=object)}
    for i, res in enumerate(decode_files(paths, size, resize)):
        if isinstance(res, ImageError):
            out["error"][i] = str(res) or "unreadable"
            continue
        arr, (w, h), nbytes = res
        out["image"][i], out["width"][i], out["height"][i], out["nbytes"][i] = arr, w, h, nbytes
    return out


class EmbedActor:
    """A Ray actor holding the store's embedder (built once), its threads sized to the CPUs
    Ray gave it. It refuses to embed when its model is not the store's."""

    def __init__(self, config: dict, fingerprint: str, threads: int):
        import tensorflow as tf  # this process is the actor's own: size its thread pools

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(gpu, True)
        from actdb.models.embed import EmbedConfig, Embedder

        self.emb = Embedder(EmbedConfig(**config))
        if self.emb.fingerprint != fingerprint:
            raise IngestFailed(f"a model actor built {self.emb.fingerprint}, not the store's "
                               f"{fingerprint}: every node needs the same weights file")
        crash = os.environ.get("ACTDB_TEST_ACTOR_CRASH_ONCE")  # tests: die once, mid-run
        self._crash = crash if crash and not Path(crash).exists() else None
        self.batches = 0

    def __call__(self, batch: dict) -> dict:
        self.batches += 1
        if self._crash and self.batches == 2:
            Path(self._crash).touch()
            os._exit(1)
        ok = np.asarray([not e for e in batch["error"]])
        vecs = np.zeros((len(ok), self.emb.dim), np.float32)
        if ok.any():
            vecs[ok] = self.emb.embed(batch["image"][ok])
        return {"seq": batch["seq"], "vec": vecs, "width": batch["width"],
                "height": batch["height"], "nbytes": batch["nbytes"], "error": batch["error"]}


def _resources(ray, rc: RayConfig) -> tuple[int, float, float, int]:
    """(actors, CPUs and GPUs per actor, TensorFlow threads per actor) for this cluster."""
    total = ray.cluster_resources()
    cpus, gpus = float(total.get("CPU", 1)), float(total.get("GPU", 0))
    actor_gpus = rc.actor_gpus if rc.actor_gpus is not None else (1.0 if gpus else 0.0)
    if actor_gpus and not gpus:
        raise UsageError("--actor-gpus asks for GPUs, and the Ray cluster has none")
    if actor_gpus:  # GPU actors only (never a mix): one per GPU, decoders on the CPUs
        actors = rc.actors or max(1, int(gpus // actor_gpus))
        actor_cpus = rc.actor_cpus or 1.0
    else:  # CPU actors: leave half a core to the decoders
        actors = rc.actors or 1
        actor_cpus = rc.actor_cpus or max(0.5, (cpus - 0.5) / actors)
    if actors * actor_cpus > cpus:
        raise UsageError(f"{actors} actors x {actor_cpus} CPUs is more than the cluster's "
                         f"{cpus:g} CPUs")
    return actors, actor_cpus, actor_gpus, max(1, int(round(actor_cpus)))


def ingest_ray(cfg, rc: RayConfig, progress=None):
    """The Ray engine's ``ingest`` (IngestConfig in, IngestResult out)."""
    from actdb.ingest.pipeline import (
        IngestResult,
        _after_ingest,
        _check_cheap,
        _manifest,
        prepare,
    )
    from actdb.models.embed import Embedder, backend
    from actdb.store.writer import StoreWriter

    ray = _ray()
    t0 = time.perf_counter()
    store = Path(cfg.store)
    layout, entries = prepare(cfg)
    ec = _check_cheap(store, cfg.embed)  # a mismatching store is refused before Ray starts
    ours = not ray.is_initialized()
    if ours:
        _init(ray, rc.address or os.environ.get("RAY_ADDRESS"))
    try:
        actors, actor_cpus, actor_gpus, threads = _resources(ray, rc)
        if ec.precision == "auto":  # resolved where the model runs, not on the driver
            from actdb.models.embed import resolve_precision

            ec = replace(ec, precision=ray.get(ray.remote(resolve_precision).options(
                num_cpus=min(actor_cpus, 1), num_gpus=actor_gpus).remote("auto")))
        emb = Embedder(ec)  # the manifest's weights hash and fingerprint
        manifest = _manifest(emb, cfg.embed.weights)
        batch_size = cfg.batch_size or (256 if actor_gpus else 32)
        root = str(layout.root)
        options = {k: v for k, v in asdict(cfg).items() if k not in ("root", "store")}
        options.update(engine="ray", backend=backend(), actors=actors, actor_cpus=actor_cpus,
                       actor_gpus=actor_gpus, batch_size=batch_size)
        with StoreWriter(store, manifest) as w:
            present = w.existing_paths(root)
            todo = [e for e in entries if e.path not in present]
            skipped = len(entries) - len(todo)
            run_id = w.start_run(root, layout.name, options)
            ingested, failures, status = 0, [], "interrupted"
            try:
                if todo:
                    ingested, failures = _run(ray, w, todo, root, ec, manifest, batch_size,
                                              cfg, (actors, actor_cpus, actor_gpus, threads),
                                              present, progress)
                status = "done"
            finally:
                w.finish_run(status, ingested, skipped, len(failures))
    finally:
        if ours:
            ray.shutdown()
    result = IngestResult(
        store=str(store), layout=layout.name, layout_notes=layout.notes, run_id=run_id,
        total=len(entries), ingested=ingested, skipped=skipped, failed=len(failures),
        failures=failures, seconds=time.perf_counter() - t0, precision=ec.precision)
    return _after_ingest(store, cfg, result)


def _run(ray, w, todo, root, ec, manifest, batch_size, cfg, res, present, progress):
    import pyarrow as pa
    from ray.data import ActorPoolStrategy, DataContext

    actors, actor_cpus, actor_gpus, threads = res
    ctx = DataContext.get_current()
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
    ctx.execution_options.preserve_order = True  # listing order: the local engine's ids
    ctx.enable_progress_bars = False
    try:
        rows = pa.table({"seq": np.arange(len(todo), dtype=np.int64),
                         "path": [e.path for e in todo]})
        ds = ray.data.from_arrow([rows.slice(i, BLOCK_ROWS)
                                  for i in range(0, len(todo), BLOCK_ROWS)])
        ds = ds.map_batches(_decode, fn_kwargs={"size": ec.image_size, "resize": ec.resize,
                                                "root": root},
                            batch_size=None, batch_format="numpy", num_cpus=0.5)
        env = {k: v for k, v in os.environ.items() if k.startswith("ACTDB_")}
        ds = ds.map_batches(EmbedActor, fn_constructor_kwargs={
            "config": asdict(ec), "fingerprint": manifest.fingerprint, "threads": threads},
            batch_size=batch_size, batch_format="numpy",
            compute=ActorPoolStrategy(size=actors), num_cpus=actor_cpus,
            num_gpus=actor_gpus or None, runtime_env={"env_vars": env} if env else None)
        next_id = w.next_image_id()
        ingested, failures, done = 0, [], 0
        for batch in ds.iter_batches(batch_size=cfg.rows_per_shard, batch_format="numpy",
                                     prefetch_batches=1):
            ids, vecs, image_rows, fail_rows = [], [], [], []
            for k, seq in enumerate(batch["seq"]):
                e = todo[int(seq)]
                if e.path in present:  # a retried task's second answer: never twice
                    continue
                present.add(e.path)
                err = batch["error"][k]
                if err:
                    failures.append((e.path, str(err)))
                    fail_rows.append((root, e.path, e.split, e.synset, e.class_name, str(err)))
                    continue
                ids.append(next_id)
                vecs.append(batch["vec"][k])
                image_rows.append((next_id, root, e.path, e.split, e.synset, e.class_name,
                                   e.class_index, int(batch["width"][k]),
                                   int(batch["height"][k]), int(batch["nbytes"][k])))
                next_id += 1
            if image_rows or fail_rows:
                w.commit(np.asarray(ids, np.int64),
                         np.asarray(vecs, np.float32).reshape(len(ids), manifest.dim),
                         image_rows, fail_rows)
            ingested += len(image_rows)
            done += len(batch["seq"])
            if cfg.strict and fail_rows:
                raise IngestFailed(f"{fail_rows[0][1]}: {fail_rows[0][5]} (strict); fix or "
                                   "remove the file, or ingest without strict")
            if progress:
                progress(done, len(todo))
        return ingested, failures
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
