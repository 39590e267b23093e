"""``actdb ingest --engine ray``: the same ingest on Ray Data, across the cores of a machine or
the machines of a cluster.

The ingest driver (``pipeline.ingest``) does everything around the model, as for the local
engine: layout, selection, the store's writer lock, resume (paths already committed), the run
record, the commits, and afterwards the index and the statistics. This engine only produces
the embedded rows (``engine.Embedded``). Only ``(seq, path)`` rows travel to Ray. Decoding
runs as CPU tasks with actdb's own decoder (a bad file becomes a row with an ``error``, never
an exception); the model runs in actors, each building the store's embedder once and
refusing to embed if its fingerprint is not the manifest's; Ray restarts an actor that dies
and retries its batch. Results come back in listing order (``preserve_order``) and the
driver commits them, skipping any path already committed, so ids, vectors and failures equal
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from actdb.errors import IngestFailed, UsageError
from actdb.heavy import quietly
from actdb.ingest.engine import Embedded, RayConfig, decode_block, embed_block
from actdb.models.embed import default_batch_size

#: Rows of (seq, path) per block handed to Ray: small enough to spread over the decoders.
BLOCK_ROWS = 256


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
    """A Ray task: the engines' reader (``engine.decode_block``) over a block of files."""
    return {"seq": np.asarray(batch["seq"], np.int64),
            **decode_block([str(Path(root) / p) for p in batch["path"]], size, resize)}


class EmbedActor:
    """A Ray actor holding the store's embedder (built once), its threads sized to the CPUs
    Ray gave it. It refuses to embed when its model is not the store's."""

    def __init__(self, config: dict, layers: list[str], fingerprints: list[str],
                 threads: int):
        from actdb.models.common import is_torch_model
        from actdb.models.embed import layers_embedder

        # this process is the actor's own: size its framework's thread pools
        if is_torch_model(config["model"]):
            import torch

            torch.set_num_threads(threads)
        else:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        from actdb.options import EmbedConfig

        self.emb = layers_embedder(EmbedConfig(**config), layers, shared=False)
        built = [m.fingerprint for m in self.emb.members]
        if built != fingerprints:
            raise IngestFailed(f"a model actor built {built[0]}, not the store's "
                               f"{fingerprints[0]}: every node needs the same weights file")

    def __call__(self, batch: dict) -> dict:
        ok = np.asarray([not e for e in batch["error"]])
        out = {"seq": batch["seq"], "width": batch["width"], "height": batch["height"],
               "nbytes": batch["nbytes"], "error": batch["error"]}
        vecs = embed_block(self.emb, batch["image"], ok)  # the engines' mapper
        return {**out, **{f"vec{i}": v for i, v in enumerate(vecs)}}


@dataclass(frozen=True, kw_only=True)
class Resources:
    """How the engine places its model actors on this cluster."""

    actors: int
    actor_cpus: float
    actor_gpus: float
    threads: int  # TensorFlow's threads in each actor


def _resources(ray, rc: RayConfig) -> Resources:
    """The actors, the CPUs and GPUs of each, and their threads, for this cluster."""
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
    return Resources(actors=actors, actor_cpus=actor_cpus, actor_gpus=actor_gpus,
                     threads=max(1, int(round(actor_cpus))))


class RayEngine:
    """The engine on Ray Data (see the module docstring). ``actor`` is the class the model
    runs in (tests hand it one that fails)."""

    def __init__(self, rc: RayConfig, *, batch_size: int | None = None,
                 rows_per_shard: int = 1024, actor: type = EmbedActor):
        self.rc, self.asked_batch, self.rows_per_shard, self.actor = (
            rc, batch_size, rows_per_shard, actor)
        self.ray = _ray()
        self.ours = False
        self.members: list = []

    def __enter__(self) -> RayEngine:
        self.ours = not self.ray.is_initialized()
        if self.ours:
            _init(self.ray, self.rc.address or os.environ.get("RAY_ADDRESS"))
        try:
            self.res = _resources(self.ray, self.rc)
        except BaseException:
            self.__exit__()
            raise
        self.batch_size = self.asked_batch or default_batch_size(gpu=bool(self.res.actor_gpus))
        return self

    def __exit__(self, *exc) -> None:
        if self.ours:
            self.ray.shutdown()
            self.ours = False

    def prepare(self, ec, layers: list[str]):
        from actdb.models.embed import layers_embedder, resolve_precision

        if ec.precision == "auto":  # resolved where the model runs, not on the driver
            ec = replace(ec, precision=self.ray.get(self.ray.remote(resolve_precision).options(
                num_cpus=min(self.res.actor_cpus, 1), num_gpus=self.res.actor_gpus
            ).remote("auto", ec.model)))
        self.ec, self.layers = ec, list(layers)
        self.members = layers_embedder(ec, layers).members  # the manifests' hashes
        return self.members

    def options(self) -> dict:
        return {"actors": self.res.actors, "actor_cpus": self.res.actor_cpus,
                "actor_gpus": self.res.actor_gpus, "batch_size": self.batch_size}

    def produce(self, todo, root: Path):
        """Batches of ``rows_per_shard`` rows of ``todo`` (never empty: the driver asks only
        when there is work), in listing order; a retried task may answer a path twice, and
        the driver commits it once."""
        import pyarrow as pa
        from ray.data import ActorPoolStrategy, DataContext

        ec = self.members[0].config
        ctx = DataContext.get_current()
        saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars)
        ctx.execution_options.preserve_order = True  # listing order: the local engine's ids
        ctx.enable_progress_bars = False
        try:
            rows = pa.table({"seq": np.arange(len(todo), dtype=np.int64),
                             "path": [e.path for e in todo]})
            ds = self.ray.data.from_arrow([rows.slice(i, BLOCK_ROWS)
                                           for i in range(0, len(todo), BLOCK_ROWS)])
            ds = ds.map_batches(_decode, fn_kwargs={"size": ec.image_size,
                                                    "resize": ec.resize, "root": str(root)},
                                batch_size=None, batch_format="numpy", num_cpus=0.5)
            ds = ds.map_batches(self.actor, fn_constructor_kwargs={
                "config": asdict(replace(ec, layer=None)), "layers": self.layers,
                "fingerprints": [m.fingerprint for m in self.members],
                "threads": self.res.threads},
                batch_size=self.batch_size, batch_format="numpy",
                compute=ActorPoolStrategy(size=self.res.actors), num_cpus=self.res.actor_cpus,
                num_gpus=self.res.actor_gpus or None)
            for b in ds.iter_batches(batch_size=self.rows_per_shard, batch_format="numpy",
                                     prefetch_batches=1):
                yield [Embedded(entry=todo[int(seq)], error=str(b["error"][k]))
                       if b["error"][k] else
                       Embedded(entry=todo[int(seq)],
                                vecs=tuple(b[f"vec{i}"][k] for i in range(len(self.members))),
                                width=int(b["width"][k]), height=int(b["height"][k]),
                                nbytes=int(b["nbytes"][k]))
                       for k, seq in enumerate(b["seq"])]
        finally:
            ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved
