"""``scan --ray ADDRESS`` on a real multi-node Ray cluster on this machine: a head
and a worker node started with ``ray start`` on 127.0.0.1, token authentication
on, as the README tells a user to run it. The worker node cannot read the photo
folder or the models folder by path (tests/ray_fence: an audit hook that refuses
them, as a machine that does not share the driver's disk), and the head has no
CPU, so every photo is scanned there."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from realfaces import build_archive

pytest.importorskip("ray")

BIN = os.path.dirname(sys.executable)
FENCE = os.path.join(os.path.dirname(__file__), "ray_fence")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(address, env with the token, fence log, archive, models); a head with no CPU."""
    from realfaces import models_root

    base = tmp_path_factory.mktemp("cluster")
    archive = build_archive(base / "archive")
    (archive / "photos" / "others" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a photo")
    models = models_root(base / "roop")
    home = base / "home"  # Ray keeps its token under ~/.ray: not the user's
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    address = f"127.0.0.1:{free_port()}"
    ray = os.path.join(BIN, "ray")
    subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={address.split(':')[1]}",
                    "--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True, timeout=120)
    log = base / "fence.log"
    info = {"address": address, "env": env, "log": log, "archive": archive, "models": models,
            "worker": {**env, "PYTHONPATH": FENCE, "ERA_SPLIT_TEST_FENCE_LOG": str(log),
                       "ERA_SPLIT_TEST_FENCE": os.pathsep.join([str(archive), str(models)])}}
    try:
        yield info
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)


def join_worker(cluster) -> None:
    if cluster.get("joined"):
        return
    subprocess.run([os.path.join(BIN, "ray"), "start", f"--address={cluster['address']}",
                    "--node-ip-address=127.0.0.1", "--num-cpus=2", "--disable-usage-stats"],
                   env=cluster["worker"], check=True, capture_output=True, timeout=120)
    cluster["joined"] = True


def scan(cluster, *args, env=None, timeout=300):
    start = time.monotonic()
    proc = subprocess.run([os.path.join(BIN, "era-split"), "scan", *args, "--models", str(cluster["models"])],
                          env=env or cluster["env"], capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - start


def one_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_a_cluster_that_cannot_scan_is_one_line_within_seconds(cluster, tmp_path):
    """Never a hang: no token, nothing listening, no CPU in the cluster."""
    photos = str(cluster["archive"] / "photos" / "others")
    cache = str(tmp_path / "faces.npz")
    no_token = {k: v for k, v in cluster["env"].items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    proc, took = scan(cluster, photos, "--cache", cache, "--ray", cluster["address"], env=no_token)
    line = one_line(proc)
    assert "wants its token" in line and "RAY_AUTH_TOKEN" in line and took < 20, (line, took)

    proc, took = scan(cluster, photos, "--cache", cache, "--ray", f"127.0.0.1:{free_port()}")
    assert "cannot reach a Ray cluster" in one_line(proc) and took < 20

    if not cluster.get("joined"):  # the head alone has no CPU
        proc, took = scan(cluster, photos, "--cache", cache, "--ray", cluster["address"])
        assert "offers no CPU" in one_line(proc) and took < 60
    assert not os.path.exists(cache)


def test_nodes_that_cannot_see_the_disk_scan_the_same_cache(cluster, tmp_path):
    """The photos' bytes and the models travel through Ray: the worker node was
    refused both folders and the cache is the one a local scan writes."""
    join_worker(cluster)
    photos = str(cluster["archive"] / "photos" / "others")
    local, remote = str(tmp_path / "local.npz"), str(tmp_path / "cluster.npz")
    proc, _ = scan(cluster, photos, "--cache", local, "--workers", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    proc, _ = scan(cluster, photos, "--cache", remote, "--ray", cluster["address"], "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["skipped"] == {"unreadable": 1} and report["examples"]["unreadable"][0].endswith("broken.jpg")
    assert report["nodes"] == 1 and report["workers"] == 1  # 5 photos: one batch, one scanner
    with np.load(local) as a, np.load(remote) as b:
        ia, ib = np.argsort(a["keys"]), np.argsort(b["keys"])
        assert a["keys"][ia].tolist() == b["keys"][ib].tolist() and len(ia) >= 20
        for name in ("paths", "embeddings", "bboxes", "det_score", "blur", "landmarks"):
            assert np.allclose(a[name][ia], b[name][ib], atol=1e-5) if a[name].dtype.kind == "f" \
                else a[name][ia].tolist() == b[name][ib].tolist(), name
        fa, fb = np.argsort(a["scan_files"]), np.argsort(b["scan_files"])
        for name in ("scan_files", "scan_sizes", "scan_mtimes", "scan_status"):
            assert a[name][fa].tolist() == b[name][fb].tolist(), name
    refused = cluster["log"].read_text().splitlines()
    assert {line.split(" ", 1)[1] for line in refused} >= {os.path.join(photos, "t1.jpg")}  # it tried, was refused
    assert not any(str(cluster["models"]) in line for line in refused)  # the models came through Ray


def test_an_interrupted_cluster_scan_resumes(cluster, tmp_path):
    """Checkpoints, progress and counts work the same across nodes: a scan stopped
    after five photos resumes from its checkpoint; sending every photo's bytes."""
    join_worker(cluster)
    photos = tmp_path / "photos"
    shutil.copytree(cluster["archive"] / "photos" / "person", photos)
    cache = tmp_path / "faces.npz"
    driver = f"""
import sys
from era_split.plugin.faces import scan as scan_mod
from era_split.plugin.faces.models import ModelSpec
scan_mod.CHECKPOINT_FILES = 2
def stop(done, total, faces):
    if done == 5:
        raise KeyboardInterrupt
try:
    scan_mod.scan([{str(photos)!r}], {str(cache)!r}, ModelSpec({str(cluster['models'])!r}),
                  ray_address={cluster['address']!r}, ray_photos="send", progress=stop)
except KeyboardInterrupt:
    sys.exit(3)
"""
    proc = subprocess.run([sys.executable, "-c", driver], env=cluster["env"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 3, proc.stderr
    parts = sorted(os.listdir(tmp_path / "faces.partial"))
    assert parts == ["part-000001.npz", "part-000002.npz"] and not cache.exists()
    proc, _ = scan(cluster, str(photos), "--cache", str(cache), "--ray", "auto", "--ray-photos", "send",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["resumed"] == 4 and report["scanned"] == 8 and report["faces"] == 12
    assert not (tmp_path / "faces.partial").exists()
    proc, _ = scan(cluster, str(photos), "--cache", str(tmp_path / "local.npz"), "--workers", "1")
    with np.load(cache) as a, np.load(tmp_path / "local.npz") as b:
        assert sorted(a["keys"].tolist()) == sorted(b["keys"].tolist())


def test_a_photo_that_kills_its_scanner_takes_no_other_with_it(cluster, tmp_path):
    """The worker node dies on opening *crash-the-scanner* (tests/ray_fence), as on a
    decoder crash: Ray restarts the scanner, the batch's photos are tried again one
    by one, and only that photo is counted, as scanner_failed."""
    join_worker(cluster)
    photos = tmp_path / "photos"
    shutil.copytree(cluster["archive"] / "photos" / "person", photos)
    for extra in sorted(photos.iterdir())[5:]:
        extra.unlink()
    shutil.copy(sorted(photos.iterdir())[0], photos / "aaa-crash-the-scanner.jpg")
    cache = tmp_path / "faces.npz"
    proc, _ = scan(cluster, str(photos), "--cache", str(cache), "--ray", cluster["address"], "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["skipped"] == {"scanner_failed": 1} and report["scanned"] == 6
    assert report["examples"]["scanner_failed"] == [str(photos / "aaa-crash-the-scanner.jpg")]
    (photos / "aaa-crash-the-scanner.jpg").unlink()
    proc, _ = scan(cluster, str(photos), "--cache", str(tmp_path / "local.npz"), "--workers", "1")
    with np.load(cache) as a, np.load(tmp_path / "local.npz") as b:
        assert sorted(a["keys"].tolist()) == sorted(b["keys"].tolist()) and len(a["keys"]) == 5
