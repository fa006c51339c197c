"""The Ray executor (optional extra: ``pip install 'scenedreamer[ray]'``): each scene attempt is
a Ray task with its own resource request, on a local Ray instance or an existing cluster.

Only this module imports Ray, and only when the executor is built. Retries are the driver's
(``max_retries=0`` for Ray itself), so the manifest counts every attempt and a scene whose worker
dies is retried exactly like one that raised. Each task runs in a fresh worker process
(``max_calls=1``): the scene's peak memory is its own and a crashed scene leaves nothing behind.
"""

from __future__ import annotations

from ..errors import UserInputError
from .worker import SceneOutcome, failed_outcome, resolve_task, set_parent_death_signal

INSTALL_HINT = "pip install 'scenedreamer[ray]'"


def _ray_scene(task: str, config_data: dict, run_folder: str) -> SceneOutcome:
    set_parent_death_signal()
    return resolve_task(task)(config_data, run_folder)


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse (UserInputError) a HOST:PORT or ray://HOST:PORT address nothing listens on, within
    ``timeout`` seconds (Ray itself retries for minutes before giving up)."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserInputError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as err:
        raise UserInputError(f"--address {address}: no Ray cluster answers there ({err.strerror or err})") from None


class RayExecutor:
    """Submit scene attempts as Ray tasks; at most ``max_in_flight`` at once (default: what the
    cluster's CPUs / GPUs fit) so the manifest's "running" means running."""

    def __init__(self, address: str | None = None, cpus_per_scene: float = 1.0, gpus_per_scene: float = 0.0,
                 max_in_flight: int | None = None, task: str | None = None, num_cpus: int | None = None):
        from .worker import DEFAULT_TASK

        try:
            import ray
        except ImportError:
            raise UserInputError(f"--executor ray: Ray is not installed ({INSTALL_HINT})") from None
        self._ray = ray
        self.task = task or DEFAULT_TASK
        self.address = address
        if address and address != "auto":
            check_reachable(address)
        try:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as err:
            where = f"--address {address}" if address else "local Ray instance"
            raise UserInputError(f"{where}: cannot start or reach Ray ({' '.join(str(err).split())[:300]})") from None
        resources = ray.cluster_resources()
        fits = int(resources.get("CPU", 1) // cpus_per_scene) if cpus_per_scene > 0 else 1
        if gpus_per_scene > 0:
            if resources.get("GPU", 0) < gpus_per_scene:
                self.close()
                raise UserInputError(f"--gpus-per-scene {gpus_per_scene:g}: the Ray cluster has "
                                     f"{resources.get('GPU', 0):g} GPUs")
            fits = min(fits, int(resources["GPU"] // gpus_per_scene))
        self.max_in_flight = max(1, max_in_flight or fits)
        self._remote = ray.remote(max_calls=1)(_ray_scene).options(
            num_cpus=cpus_per_scene, num_gpus=gpus_per_scene, max_retries=0)
        self._refs: dict[int, object] = {}
        self._next = 0
        self._resources = resources

    def describe(self) -> str:
        where = self.address or "a local Ray instance"
        return (f"Ray executor on {where} ({self._resources.get('CPU', 0):g} CPUs, "
                f"{self._resources.get('GPU', 0):g} GPUs; {self.max_in_flight} scenes at once)")

    def capacity(self) -> int:
        return self.max_in_flight - len(self._refs)

    def start(self, config_data: dict, run_folder: str) -> int:
        handle = self._next
        self._next += 1
        self._refs[handle] = self._remote.remote(self.task, config_data, run_folder)
        return handle

    def wait(self, timeout: float) -> list[tuple[int, SceneOutcome]]:
        if not self._refs:
            return []
        by_ref = {ref: h for h, ref in self._refs.items()}
        ready, _ = self._ray.wait(list(by_ref), num_returns=len(by_ref), timeout=timeout)
        results = []
        for ref in ready:
            handle = by_ref[ref]
            del self._refs[handle]
            try:
                outcome = self._ray.get(ref)
            except self._ray.exceptions.RayTaskError as err:
                cause = err.cause if getattr(err, "cause", None) is not None else err
                outcome = failed_outcome(cause)         # retried only when it ran out of memory
            except self._ray.exceptions.RayError as err:     # the worker died, the node went away, ...
                outcome = SceneOutcome(ok=False, error=f"Ray worker died ({type(err).__name__})")
            results.append((handle, outcome))
        return results

    def cancel_all(self) -> None:
        for ref in self._refs.values():
            try:
                self._ray.cancel(ref, force=True)
            except Exception:   # already finished or the cluster went away: nothing to cancel
                pass
        self._refs.clear()

    def close(self) -> None:
        self.cancel_all()
        if self._ray.is_initialized():
            self._ray.shutdown()
