"""``scan --ray``: the scan's work on a Ray cluster whose nodes need nothing of
this machine's disk.

- Joining never hangs. The address is tried first, within seconds each: a TCP
  connection, then Ray's own handshake. Ray starts clusters with token
  authentication (2.5x and later); a cluster that wants a token this machine
  was not given is one line saying what to set (README: scan on several
  machines).
- The models travel once per node: the pack's ``.onnx`` files go into Ray's
  object store once; a node's first scanner writes them, checked by SHA-256,
  into a private folder of the node's temp dir, and the node's other scanners
  find them there. No node reads ``--models``.
- The photos: a node reads a photo by its path only where it sees the same file
  (same size and modification time: a shared mount); otherwise, and always with
  ``photos="send"``, this machine reads it and sends the bytes. A node that
  once could not is sent every photo from then on.
- One scanner per CPU of the cluster (``--workers`` caps only the local pool).
  Batches are handed out as scanners free up, :data:`IN_FLIGHT` each, so this
  machine holds only that many batches' bytes.
- A scanner that dies (a node lost, a decoder crash) has its photos tried
  again one by one, each alone on a scanner, so a photo that kills its scanner
  takes no other with it; one that failed :data:`TRIES` times is counted as
  ``scanner_failed``. No result for :data:`RESULT_TIMEOUT` seconds stops the
  scan; the checkpoint keeps what was done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import stat
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import EraSplitError
from ..host.fsutil import open_regular
from .models import ModelSpec, load_analyser
from .photo import FileResult, scan_file

CONNECT_TIMEOUT = 10.0  # seconds for each of the TCP connection and Ray's handshake
CPU_WAIT = 15.0  # seconds for a node with CPUs to show up in a cluster that has none
READY_TIMEOUT = 300.0  # seconds for the first scanner to load its models
RESULT_TIMEOUT = 600.0  # seconds without any result before the scan stops
BATCH = 8  # photos per task
IN_FLIGHT = 2  # batches per scanner at a time
TRIES = 2  # a photo whose scanner died is tried this often in all
RESTART_WAIT = 120  # times (0.5 s apart) a restarting scanner is asked whether it is back
MAX_SEND = 512 << 20  # bytes: a photo file larger than this is not sent ("too_large")
NOT_HERE = "not_on_node"  # a scanner's answer for a photo its node cannot read by path
PHOTO_MODES = ("auto", "send")

TOKEN_HELP = ("the cluster wants its token: on the head node `ray get-auth-token` prints it; "
              "export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=<that token> here and on every node "
              "before `ray start` (README: scan on several machines)")


def _ray():
    try:
        import ray  # type: ignore
    except ImportError:
        raise EraSplitError(None, "--ray needs Ray: pip install 'era-split[ray]'") from None
    return ray


def _last_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _is_auth(exc: BaseException) -> bool:
    return "AuthenticationError" in type(exc).__name__ or "InvalidAuthToken" in str(exc) \
        or "Unauthenticated" in str(exc)


def _address(address: str) -> str:
    """``host:port`` of ``address``; "auto" is the cluster this machine runs (RAY_ADDRESS,
    else the one ``ray start`` recorded)."""
    if address == "auto":
        found = None
        try:  # as Ray finds it: RAY_ADDRESS, else the cluster `ray start` last made here
            from ray._private.services import get_ray_address_from_environment  # type: ignore

            found = get_ray_address_from_environment("auto", None)
        except ImportError:
            found = os.environ.get("RAY_ADDRESS") or None
        except Exception:  # noqa: BLE001 - Ray found none
            found = None
        if not found or found == "auto":
            raise EraSplitError(None, "--ray auto: no Ray cluster runs on this machine (`ray start --head` "
                                      "starts one; or give its address, HOST:6379)")
        address = found
    if address.startswith("ray://"):
        raise EraSplitError(None, f"--ray {address}: Ray Client addresses are not supported; run the scan on "
                                  "a machine of the cluster (the head, where the photos are) with HOST:PORT")
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise EraSplitError(None, f"--ray {address!r}: expected HOST:PORT (the head's address, e.g. "
                                  "192.168.1.10:6379), auto or local")
    return f"{host.strip('[]')}:{port}"


def _probe(address: str) -> None:
    """One line within seconds for a cluster that cannot be joined."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise EraSplitError(None, f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}): is "
                                  "`ray start --head` running there, and the port open to this machine?") from None
    try:
        from ray._raylet import GcsClient  # type: ignore  # Ray's own handshake, quick to fail
    except ImportError:
        return
    box: dict[str, BaseException] = {}

    def handshake() -> None:
        try:
            GcsClient(address=address).internal_kv_get(b"era-split", None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    probe = threading.Thread(target=handshake, daemon=True)
    with _stderr_silenced():  # Ray's C++ client logs each failed try; the one line below says it all
        probe.start()
        probe.join(CONNECT_TIMEOUT)
    if probe.is_alive():
        raise EraSplitError(None, f"{address} answers but not as a Ray cluster within {CONNECT_TIMEOUT:.0f} s "
                                  "(is it the head's GCS port, 6379 by default?)")
    if "error" in box:
        if _is_auth(box["error"]):
            raise EraSplitError(None, f"cannot join the Ray cluster at {address}: {TOKEN_HELP}")
        raise EraSplitError(None, f"cannot join the Ray cluster at {address}: {_last_line(box['error'])}")


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    try:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        yield
        return
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def connect(address: str, local_cpus: int) -> None:
    """Join the cluster at ``address`` ("auto": this machine's; "local": start one
    here with ``local_cpus`` CPUs)."""
    ray = _ray()
    if ray.is_initialized():
        return
    quiet = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    where = "a local Ray cluster" if address == "local" else None
    try:
        if address == "local":
            # "local" makes Ray start a new cluster even where `ray start` runs one here
            ray.init(address="local", num_cpus=max(1, local_cpus), **quiet)
        else:
            address = _address(address)
            where = f"the Ray cluster at {address}"
            _probe(address)
            ray.init(address=address, **quiet)
    except EraSplitError:
        raise
    except Exception as exc:
        help_ = TOKEN_HELP if _is_auth(exc) else _last_line(exc)
        raise EraSplitError(None, f"cannot start {where}: {help_}" if address == "local"
                            else f"cannot join {where}: {help_}") from None


def _cluster_cpus(ray, address: str) -> int:
    deadline = time.monotonic() + CPU_WAIT
    while True:
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if cpus < 1:
        raise EraSplitError(None, f"the Ray cluster at {address} offers no CPU to scan with: join a node "
                                  "(`ray start --address=HEAD:6379`), or start the head with CPUs")
    return cpus


# --- the models, once per node -----------------------------------------------------


def pack_files(spec: ModelSpec) -> dict[str, np.ndarray]:
    """The pack's ``.onnx`` files as byte arrays (Ray shares arrays without copies)."""
    out = {}
    for name in sorted(os.listdir(spec.folder)):
        if name.endswith(".onnx"):
            with open_regular(os.path.join(spec.folder, name)) as fh:
                out[name] = np.frombuffer(fh.read(), dtype=np.uint8)
    return out


def _digest(data) -> str:
    return hashlib.sha256(memoryview(data)).hexdigest()


def _private_dir() -> str:
    """``<temp>/era-split-<uid>``: this user's, no one else's (a folder another
    user made there could swap the models)."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    base = os.path.join(tempfile.gettempdir(), f"era-split-{uid}")
    try:
        os.mkdir(base, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(base)
    if not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != uid) or st.st_mode & 0o077:
        raise EraSplitError(base, "is not this user's private folder; the scanner will not keep models there")
    return base


def node_models(files: dict[str, np.ndarray], digests: dict[str, str], name: str) -> str:
    """A models root on this node holding ``files`` as ``models/<name>/``: the files
    already there when their SHA-256 is right, else written (temp file + rename)."""
    key = hashlib.sha256("".join(f"{n}:{d};" for n, d in sorted(digests.items())).encode()).hexdigest()[:16]
    root = os.path.join(_private_dir(), key)
    folder = os.path.join(root, "models", name)
    os.makedirs(folder, 0o700, exist_ok=True)
    for fname, data in files.items():
        path = os.path.join(folder, fname)
        try:
            with open_regular(path) as fh:
                if _digest(fh.read()) == digests[fname]:
                    continue
        except OSError:
            pass
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(memoryview(data))
        os.replace(tmp, path)
    return root


class Scanner:
    """One model on one CPU of a node (a Ray actor)."""

    def __init__(self, name: str, det_size: int, digests: dict[str, str]) -> None:
        self.name, self.det_size, self.digests = name, det_size, digests
        self.app = None

    def ready(self, files: list) -> str:
        """Load the models (again after Ray restarted this scanner); this node's id.
        The files' reference comes in a list, so Ray fetches them only here, once
        per node, and a restart needs no constructor argument kept in the store."""
        import ray  # type: ignore

        if self.app is None:
            pack = ray.get(files[0])
            self.app = load_analyser(ModelSpec(node_models(pack, self.digests, self.name), self.name,
                                               self.det_size))
        return ray.get_runtime_context().get_node_id()

    def run(self, batch: list[tuple]) -> list[FileResult | str]:
        out: list[FileResult | str] = []
        for path, size, mtime, known, data in batch:
            if data is None:
                data = _read_here(path, size, mtime)
                if data is None:
                    out.append(NOT_HERE)
                    continue
            out.append(scan_file(self.app, path, size, mtime, known, data))
        return out


def _read_here(path: str, size: int, mtime: int) -> bytes | None:
    """The photo's bytes when this node sees the same file at ``path``."""
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())
            if (st.st_size, st.st_mtime_ns) != (size, mtime) or size > MAX_SEND:
                return None
            return fh.read()
    except OSError:
        return None


def _read_to_send(item: tuple) -> tuple | FileResult:
    """``item`` with its bytes, or why they cannot be sent."""
    path, size, mtime, known = item[:4]
    if size > MAX_SEND:
        return FileResult(path, size, mtime, "too_large", [])
    try:
        with open_regular(path) as fh:
            return (path, size, mtime, known, fh.read())
    except FileNotFoundError:
        return FileResult(path, size, mtime, "missing", [])
    except OSError:
        return FileResult(path, size, mtime, "unreadable", [])


# --- the work ----------------------------------------------------------------------


def run_on_ray(todo: list[tuple], spec: ModelSpec, address: str, *, photos: str = "auto", local_cpus: int = 1,
               started: Callable[[int, int], None] | None = None) -> Iterator[FileResult]:
    """Scan ``todo`` ((path, size, mtime, known) per photo) on the cluster, yielding
    each photo's result as it comes; ``started(scanners, nodes)`` as they join."""
    if photos not in PHOTO_MODES:
        raise EraSplitError(None, f"--ray-photos must be one of {', '.join(PHOTO_MODES)}, got {photos!r}")
    if not todo:
        return
    ray = _ray()
    # Ray prints what its workers report (a scanner that died) on stdout, where
    # `--json` writes; while it runs, that goes to stderr with the progress
    to_stderr = contextlib.redirect_stdout(sys.stderr)
    to_stderr.__enter__()
    actors: list = []
    try:
        connect(address, local_cpus)
        where = "the local Ray cluster" if address == "local" else f"the Ray cluster at {address}"
        cpus = _cluster_cpus(ray, address)
        files = pack_files(spec)
        digests = {n: _digest(d) for n, d in files.items()}
        files_ref = ray.put(files)
        del files
        remote = ray.remote(num_cpus=1, max_restarts=3, max_task_retries=0)(Scanner)
        actors = [remote.remote(spec.name, spec.det_size, digests) for _ in range(min(cpus, -(-len(todo) // BATCH)))]
        yield from _schedule(ray, actors, [files_ref], todo, photos, where, started)
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if ray.is_initialized():
            ray.shutdown()
        to_stderr.__exit__(None, None, None)


def _schedule(ray, actors, files, todo, photos, where, started) -> Iterator[FileResult]:
    queue: deque[tuple[list[tuple], int, bool]] = deque(  # (items, tries, send the bytes)
        (todo[i:i + BATCH], 0, photos == "send") for i in range(0, len(todo), BATCH))
    waiting = {a.ready.remote(files): a for a in actors}  # scanners loading their models
    node: dict = {}  # ready scanner -> its node
    load: dict = {}  # ready scanner -> batches in flight
    blind: set[str] = set()  # nodes that cannot read the photos by path
    alone: set = set()  # scanners running a photo tried again, and nothing else
    flight: dict = {}  # task -> (scanner, items, tries, sent)
    errors: list[str] = []
    restarting: Counter = Counter()  # scanner -> times asked while Ray restarted it
    begun = last = time.monotonic()

    def admit(timeout: float) -> None:
        done, _ = ray.wait(list(waiting), num_returns=len(waiting), timeout=timeout)
        for ref in done:
            actor = waiting.pop(ref)
            try:
                node[actor] = ray.get(ref)
                load[actor] = 0
            except Exception as exc:  # noqa: BLE001 - a scanner that cannot start
                if "Unavailable" in type(exc).__name__ and restarting[actor] < RESTART_WAIT:
                    restarting[actor] += 1  # Ray is restarting it: ask again
                    time.sleep(0.5)
                    waiting[actor.ready.remote(files)] = actor
                else:
                    errors.append(_last_line(exc))
        if done and started:
            started(len(node), len(set(node.values())))

    while queue or flight:
        if waiting:
            admit(0 if node else 1.0)
        if not node and not waiting:
            raise EraSplitError(None, f"no scanner could start on {where}: {errors[0] if errors else 'unknown'} "
                                      "(every node needs `pip install 'era-split[scan,ray]'`)")
        if not node:
            if time.monotonic() - begun > READY_TIMEOUT:
                raise EraSplitError(None, f"no scanner started on {where} within {READY_TIMEOUT:.0f} s "
                                          f"({len(waiting)} waiting for a CPU or memory)")
            continue
        for actor in list(node):
            while queue and load[actor] < (1 if actor in alone else IN_FLIGHT):
                items, tries, send = queue[0]
                if tries and load[actor]:  # a photo tried again runs alone on an idle scanner
                    break
                queue.popleft()
                if tries:
                    alone.add(actor)
                if send or node[actor] in blind:
                    ready = []
                    for item in items:
                        got = _read_to_send(item)
                        if isinstance(got, FileResult):
                            yield got
                        else:
                            ready.append(got)
                    items, send = ready, True
                    if not items:
                        continue
                else:
                    items = [(*item[:4], None) for item in items]
                flight[actor.run.remote(items)] = (actor, items, tries, send)
                load[actor] += 1
        if not flight:
            continue
        done, _ = ray.wait(list(flight), num_returns=1, timeout=1.0)
        if not done:
            if time.monotonic() - last > RESULT_TIMEOUT:
                raise EraSplitError(None, f"no result from {where} in {RESULT_TIMEOUT:.0f} s; what was scanned "
                                          "is kept: run the same command again to resume")
            continue
        last = time.monotonic()
        actor, items, tries, send = flight.pop(done[0])
        if actor in load:
            load[actor] -= 1
        if tries:
            alone.discard(actor)
        try:
            out = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001 - the scanner died: its photos go elsewhere
            errors.append(_last_line(exc))
            if actor in node:
                del node[actor], load[actor]
                alone.discard(actor)
                waiting[actor.ready.remote(files)] = actor  # back when Ray has restarted it
            if tries + 1 < TRIES:  # one by one, alone: a photo that kills its scanner takes no other with it
                queue.extendleft(([item], tries + 1, send) for item in reversed(items))
            else:
                for path, size, mtime, *_ in items:
                    yield FileResult(path, size, mtime, "scanner_failed", [])
            continue
        again = [item[:4] for item, res in zip(items, out) if isinstance(res, str)]
        if again:
            blind.add(node[actor])
            queue.appendleft((again, tries, True))
        for res in out:
            if not isinstance(res, str):
                yield res
