"""Data-parallel training on many devices and many processes, through JAX's own sharding.

``fx.train(..., devices=jax.devices())`` splits every batch along its first axis over the
devices, keeps the parameters and the optimiser state replicated, and lets XLA add the
gradient all-reduce ("computation follows data"): fluxjax has no collectives of its own.
``mesh=`` takes a ``jax.sharding.Mesh`` with a ``"batch"`` axis instead, and
``shard_params=True`` shards each parameter and optimiser-state array along its largest axis
that the mesh divides (FSDP-style) instead of replicating it.

A ``Placement`` says where each kind of array goes; ``train`` asks it for the parameters
(``model``), the batches (``batch``, ``stacked``, and ``constrain`` inside compiled code)
and the outputs of a compiled step (``wrap``). ``initialize`` joins several processes
(``jax.distributed``); each then passes its own part of every batch, for example from
``DataLoader(..., shard=(jax.process_index(), jax.process_count()))``.

>>> import jax, fluxjax as fx
>>> fx.distributed.Placement.from_args(devices=jax.devices()[:1]) is None  # one device
True
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["Placement", "initialize", "is_main"]

AXIS = "batch"  # the mesh axis batches are split over


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: int | Sequence[int] | None = None,
    **kwargs: Any,
) -> None:
    """Join this process to a multi-process run: ``jax.distributed.initialize`` with Gloo
    collectives for CPU devices (NCCL is used on GPUs regardless).

    Call it first thing, before any other JAX or fluxjax call. ``coordinator_address`` is
    ``"host:port"`` of process 0, the same in every process; ``num_processes`` and
    ``process_id`` (0-based) say who is who. On SLURM and other clusters JAX detects all
    three when they are left out. Other keywords go to ``jax.distributed.initialize``.
    Afterwards ``jax.devices()`` lists every process's devices and ``jax.local_devices()``
    this process's own; ``fx.train(..., devices=jax.devices())`` trains on all of them.

    >>> import jax, fluxjax as fx
    >>> fx.distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=0)  # doctest: +SKIP
    >>> jax.process_count()  # without initialize: one process
    1
    """
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address,
            num_processes,
            process_id,
            local_device_ids=local_device_ids,
            **kwargs,
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"fx.distributed.initialize: {e}. Call it once per process, before any other "
            "JAX or fluxjax call (creating a model or an array starts JAX on one process)."
        ) from e


def is_main() -> bool:
    """True in process 0 (in a one-process run, always): the process that should write
    checkpoints, logs and pictures, so that N processes do not write the same file N times.

    >>> import fluxjax as fx
    >>> fx.distributed.is_main()
    True
    """
    return jax.process_index() == 0


def _split_devices(devices: Any) -> list[Any]:
    if isinstance(devices, int) and not isinstance(devices, bool):
        have = jax.devices()
        if not 1 <= devices <= len(have):
            raise ValueError(
                f"train: devices={devices}, but there are {len(have)} device(s) "
                f"({have[0].platform}); pass at most {len(have)}. On a CPU, simulate more "
                "with XLA_FLAGS=--xla_force_host_platform_device_count=N set before JAX starts."
            )
        return have[:devices]
    if isinstance(devices, str):
        raise TypeError(
            f"train: devices must be a list of JAX devices or a count, got {devices!r}; "
            f"pass devices=jax.devices() (or jax.devices({devices!r}))."
        )
    if isinstance(devices, jax.Device):
        devices = [devices]
    try:
        devices = list(devices)
    except TypeError:
        devices = [devices]
    bad = [d for d in devices if not isinstance(d, jax.Device)]
    if bad or not devices:
        raise TypeError(
            f"train: devices must be a list of JAX devices (e.g. devices=jax.devices()) or a "
            f"count, got {bad[0] if bad else devices!r}."
        )
    if len({d.id for d in devices}) != len(devices):
        raise ValueError(f"train: devices lists a device twice: {devices}.")
    return devices


def _check_mesh(mesh: Any) -> None:
    if not isinstance(mesh, Mesh) or AXIS not in mesh.axis_names:
        raise TypeError(
            f"train: mesh must be a jax.sharding.Mesh with a {AXIS!r} axis (batches are "
            f"split over it), got {mesh!r}; e.g. Mesh(np.array(jax.devices()), ({AXIS!r},))."
        )


_CACHE: dict[Any, Placement | None] = {}


class Placement:
    """Where ``train`` puts arrays on a mesh with a ``"batch"`` axis of ``n`` devices.

    * parameters, other model arrays and optimiser state: replicated
      (``NamedSharding(mesh, P())``), or with ``shard_params=True`` split along their largest
      axis that ``n`` divides (arrays with no such axis are replicated);
    * batches: split along their first (observation) axis over ``"batch"``: each device
      gets ``b / n`` observations of a batch of ``b``, so ``n`` must divide ``b``;
    * losses and the failure flag of a compiled step: replicated.

    >>> import jax, numpy as np
    >>> from jax.sharding import Mesh
    >>> from fluxjax.distributed import Placement
    >>> pl = Placement(Mesh(np.array(jax.devices()[:1]), ("batch",)), shard_params=True)
    >>> pl
    Placement(1 device, shard_params=True)
    >>> pl.sharding((6, 4)).spec
    P('batch',)
    """

    def __init__(self, mesh: Mesh, shard_params: bool = False) -> None:
        _check_mesh(mesh)
        self.mesh, self.shard_params = mesh, bool(shard_params)
        self.size = int(mesh.shape[AXIS])
        self.multiprocess = jax.process_count() > 1
        self.replicated = NamedSharding(mesh, P())
        self.split = NamedSharding(mesh, P(AXIS))

    @classmethod
    def from_args(
        cls, devices: Any = None, mesh: Mesh | None = None, shard_params: bool = False
    ) -> Placement | None:
        """The placement for ``train``'s ``devices=``, ``mesh=`` and ``shard_params=``, or
        None when there is one device (and one process): then nothing is placed.

        >>> import jax
        >>> from fluxjax.distributed import Placement
        >>> Placement.from_args() is None
        True
        """
        if not isinstance(shard_params, bool):
            raise TypeError(f"train: shard_params must be True or False, got {shard_params!r}.")
        if devices is None and mesh is None:
            if shard_params:
                raise ValueError(
                    "train: shard_params=True needs devices to shard over; pass also "
                    "devices=jax.devices() or mesh=."
                )
            return None
        if devices is not None and mesh is not None:
            raise ValueError(
                "train: pass devices= or mesh=, not both (a mesh already names its devices)."
            )
        if mesh is not None:
            _check_mesh(mesh)
        key = (mesh, shard_params) if mesh is not None else None
        if key is None:
            devs = _split_devices(devices)
            key = (tuple(d.id for d in devs), shard_params)
        if key not in _CACHE:
            if mesh is None:
                mesh = Mesh(np.array(devs), (AXIS,))
            alone = mesh.size == 1 and jax.process_count() == 1
            _CACHE[key] = None if alone else cls(mesh, shard_params)
        return _CACHE[key]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Placement)
            and self.mesh == other.mesh
            and self.shard_params == other.shard_params
        )

    def __hash__(self) -> int:
        return hash((self.mesh, self.shard_params))

    def __repr__(self) -> str:
        n = self.mesh.size
        return f"Placement({n} device{'s' * (n != 1)}, shard_params={self.shard_params})"

    # -- the model and the optimiser state ------------------------------------------------
    def sharding(self, shape: Sequence[int]) -> NamedSharding:
        """The sharding of a model or optimiser-state array of ``shape``: replicated, or
        with ``shard_params`` its largest axis that the mesh divides (the first on ties)."""
        if not self.shard_params:
            return self.replicated
        fits = [(-d, i) for i, d in enumerate(shape) if d >= self.size and d % self.size == 0]
        if not fits:
            return self.replicated
        axis = min(fits)[1]
        return NamedSharding(self.mesh, P(*([None] * axis), AXIS))

    def put(self, a: Any, sharding: NamedSharding) -> Any:
        """``a`` with ``sharding`` (itself when it already has it). In a multi-process run
        every process holds the same value of ``a``; each keeps its own devices' part."""
        if isinstance(a, jax.Array) and a.sharding == sharding:
            return a
        if not self.multiprocess or (isinstance(a, jax.Array) and not a.is_fully_addressable):
            return jax.device_put(a, sharding)
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):  # a layer's random key
            impl = jax.random.key_impl(a)
            data = self.put(jax.random.key_data(a), sharding)
            return jax.random.wrap_key_data(data, impl=impl)
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda ix: host[ix])

    def model(self, arrays: Any) -> Any:
        """Every array of ``arrays`` (any pytree) placed as a parameter: replicated, or
        sharded along its largest divisible axis with ``shard_params``."""
        return jax.tree_util.tree_map(lambda a: self.put(a, self.sharding(np.shape(a))), arrays)

    # -- batches --------------------------------------------------------------------------
    def _check(self, shape: Sequence[int], axis: int, where: str) -> None:
        n = self.size // jax.process_count() if self.multiprocess else self.size
        if shape[axis] % n:
            who = "this process's part of a batch" if self.multiprocess else "a batch"
            raise ValueError(
                f"train: {who} has {shape[axis]} observations ({where}, shape "
                f"{tuple(shape)}), which cannot be split evenly over {n} devices. Use a "
                f"batch size divisible by {n}, or DataLoader(..., partial=False) to drop "
                "a short last batch."
            )

    def _leaves(self, batch: Any, axis: int, spec: P, where: str) -> Any:
        sharding = NamedSharding(self.mesh, spec)

        def one(path: Any, a: Any) -> Any:
            if not hasattr(a, "shape") or len(a.shape) <= axis:
                return a if not hasattr(a, "shape") else self.put(a, self.replicated)
            self._check(a.shape, axis, f"{where}{jax.tree_util.keystr(path)}")
            if not self.multiprocess:
                return jax.device_put(a, sharding)
            if isinstance(a, jax.Array) and not a.is_fully_addressable:
                return jax.device_put(a, sharding)
            shape = list(a.shape)
            shape[axis] *= jax.process_count()
            return jax.make_array_from_process_local_data(sharding, np.asarray(a), tuple(shape))

        return jax.tree_util.tree_map_with_path(one, batch)

    def batch(self, batch: Any) -> Any:
        """Every array of a batch split along its first axis over the ``"batch"`` mesh axis
        (scalars replicated). In a multi-process run ``batch`` is this process's part, and
        the result is the global batch: the parts concatenated in process order."""
        return self._leaves(batch, 0, P(AXIS), "batch")

    def stacked(self, batches: Any) -> Any:
        """Like ``batch`` for batches stacked along a new first axis (split along axis 1)."""
        return self._leaves(batches, 1, P(None, AXIS), "stacked batches")

    def replicate(self, data: Any) -> Any:
        """Every array of ``data`` on every device (the data a fused loop gathers from)."""
        return jax.tree_util.tree_map(lambda a: self.put(a, self.replicated), data)

    def constrain(self, batch: Any) -> Any:
        """Inside compiled code: the batch split along its first axis over ``"batch"``
        (``jax.lax.with_sharding_constraint``), for batches gathered on the device."""

        def one(path: Any, a: Any) -> Any:
            if not hasattr(a, "shape") or len(a.shape) == 0:
                return a
            self._check_global(a.shape, f"batch{jax.tree_util.keystr(path)}")
            if isinstance(a, jax.core.Tracer):
                return jax.lax.with_sharding_constraint(a, self.split)
            return jax.device_put(a, self.split)

        return jax.tree_util.tree_map_with_path(one, batch)

    def _check_global(self, shape: Sequence[int], where: str) -> None:
        if shape[0] % self.size:
            raise ValueError(
                f"train: a batch has {shape[0]} observations ({where}, shape {tuple(shape)}), "
                f"which cannot be split evenly over {self.size} devices. Use a batch size "
                f"divisible by {self.size}, or DataLoader(..., partial=False) to drop a short "
                "last batch."
            )

    def constrain_out(self, out: tuple[Any, ...]) -> tuple[Any, ...]:
        """Inside compiled code: a step's outputs ``(params, other arrays, state buffers,
        halt, losses)`` pinned to their placements, so the next call sees the same shardings
        (and does not compile again)."""
        tv, changed, bufs, *rest = out

        def pin(a: Any) -> Any:
            return jax.lax.with_sharding_constraint(a, self.sharding(a.shape))

        keep = jax.tree_util.tree_map(pin, (tv, changed, bufs))
        rest = jax.tree_util.tree_map(
            lambda a: jax.lax.with_sharding_constraint(a, self.replicated), rest
        )
        return (*keep, *rest)


def wrap(placement: Placement | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a compiled step's body) with its outputs pinned by ``placement``: the
    parameters, changed model arrays and state buffers to ``placement.sharding`` of their
    shapes, the failure flag and the losses replicated. With no placement, ``fn`` itself.

    >>> from fluxjax.distributed import wrap
    >>> f = lambda *a: a
    >>> wrap(None, f) is f
    True
    """
    if placement is None:
        return fn
    return lambda *args: placement.constrain_out(fn(*args))


# -- the engine's calls (train.py, _plan.py): each a marked line there -----------------------
def use(plan: Any, placement: Placement | None) -> None:
    """Make a training plan run under ``placement`` (None: one device): rebuild its compiled
    functions when the placement changed, then place its optimiser-state buffers, its
    failure flag and every model array it binds (arrays already in place stay as they are).
    """
    if plan.placement != placement:
        plan.placement = placement
        plan.programs = {}  # compiled again with the new placement's shardings
        if placement is None:  # back to one device, from an earlier call on several
            _gather(plan, jax.devices()[0])
    if placement is None:
        return
    plan.bufs = [placement.put(b, placement.sharding(b.shape)) for b in plan.bufs]
    plan.halt = placement.put(plan.halt, placement.replicated)
    plan.etas = placement.put(plan.etas, placement.replicated)
    for p in (*plan.entries, *plan.others):
        a = p.get()
        if isinstance(a, jax.Array | np.ndarray):
            placed = placement.put(a, placement.sharding(a.shape))
            if placed is not a:
                p.set(placed)


def _gather(plan: Any, device: Any) -> None:
    def home(a: Any) -> Any:
        if isinstance(a, jax.Array) and len(a.devices()) > 1:
            return jax.device_put(a, device)
        return a

    plan.bufs = [home(b) for b in plan.bufs]
    plan.halt = home(plan.halt)
    plan.etas = home(plan.etas)
    for p in (*plan.entries, *plan.others):
        a = p.get()
        if home(a) is not a:
            p.set(home(a))


def loader_data(placement: Placement, loader: Any, data: Any) -> Any:
    """A fused DataLoader's device arrays replicated on every device, kept on the loader
    (its arrays cannot change) for as long as the placement stays the same."""
    cached = loader.__dict__.get("_fx_placed")
    if cached is None or cached[0] is not data or cached[1] != placement:
        cached = (data, placement, placement.replicate(data))
        loader.__dict__["_fx_placed"] = cached
    return cached[2]


def same_loader(loader: Any) -> None:
    """In a multi-process run, check once per loader that every process's ``DataLoader``
    takes the same steps: as many batches an epoch, of the same sizes, the same place in its
    epochs, the same shard count (and for ``shard=``, the same observation count and
    shuffling), and (without ``collate``) arrays of the same trailing shapes and dtypes
    (``_gather_ints``: compiles nothing). Otherwise a process would wait in a collective that the
    others never reach; this raises a ``ValueError`` naming what differs instead.

    >>> import numpy as np, fluxjax as fx
    >>> fx.distributed.same_loader(fx.DataLoader(np.arange(4)))  # one process: nothing to do
    """
    if loader.__dict__.get("_fx_same") or jax.process_count() == 1:
        return
    # the batch arrays' trailing shapes and dtypes (a collate loader's batches are made by
    # its function, so only its counts are compared)
    leaves = [] if loader.collate is not None else jax.tree_util.tree_leaves(loader.data)
    arrays = repr([(np.shape(a)[1:], str(getattr(a, "dtype", type(a)))) for a in leaves])
    sharded = loader.shard is not None  # parts of the same data: the same data, shuffled alike
    fields = {
        "batches per epoch": len(loader),
        "batchsize": loader.batchsize,
        "short last batch": loader.nobs % loader.batchsize if loader.partial else 0,
        "epoch": loader.epoch,
        "position": loader.position,
        "shard count": loader.shard[1] if sharded else 1,
        "nobs": loader.nobs if sharded else -1,
        "shuffle": int(loader.shuffle) if sharded else -1,
        # (Python's hash differs between processes)
        "arrays": zlib.crc32(arrays.encode()) & 0x7FFFFFFF,
    }
    every = _gather_ints(list(fields.values()))
    differ = [k for i, k in enumerate(fields) if (every[:, i] != every[0, i]).any()]
    if differ:
        shown = [(i, k) for i, k in enumerate(fields) if k in differ and k != "arrays"]
        seen = [
            f"process {p}: " + ", ".join(f"{k}={every[p, i]}" for i, k in shown)
            for p in range(len(every))
        ]
        if "arrays" in differ:
            seen.append("the batch arrays differ in trailing shape or dtype")
        raise ValueError(
            f"train: the DataLoaders of the processes differ in {', '.join(differ)} "
            f"({'; '.join(x for x in seen if not x.endswith(': '))}), so the processes would "
            "take different steps and wait for each other forever. Build the same "
            "DataLoader in every process, over the same data, with "
            "shard=(jax.process_index(), jax.process_count())."
        )
    loader.__dict__["_fx_same"] = True


_GATHERS = itertools.count()  # every process gathers in the same order: the same keys


def _gather_ints(values: list[int]) -> np.ndarray:
    """Every process's ``values``, one row a process in process order, through the
    coordination service's key-value store, which compiles nothing (JAX's
    ``process_allgather``, used where that store is not reachable, compiles an all-gather)."""
    try:  # the client jax.distributed.initialize made (JAX keeps it in a private module)
        from jax._src.distributed import global_state

        client = global_state.client
    except (ImportError, AttributeError):
        client = None
    if client is None:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(np.array(values, np.int32)))
    key = f"fluxjax/gather/{next(_GATHERS)}"
    client.key_value_set(f"{key}/{jax.process_index()}", ",".join(map(str, values)))
    rows = [
        client.blocking_key_value_get(f"{key}/{p}", GATHER_TIMEOUT_MS)
        for p in range(jax.process_count())
    ]
    return np.array([[int(v) for v in r.split(",")] for r in rows], np.int64)


GATHER_TIMEOUT_MS = 10 * 60 * 1000  # a process that never reaches the check: an error then
