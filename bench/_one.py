"""One measured operation for bench/run.py, in its own process; prints a JSON line."""

import json
import resource
import sys
import time


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: reset at exec, unlike ru_maxrss,
    which Linux carries over from the parent). Pages of a memory-mapped cache that
    were read count in it; crop worker processes are not included."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def split_task(task):
    from era_split.plugin import api
    from era_split.plugin.host.paths import parse_remap
    from era_split.plugin.split.params import SplitParams
    from era_split.plugin.timing import Stopwatch

    clock = Stopwatch()
    params = SplitParams(**task.get("params", {}))
    remaps = [parse_remap(r) for r in task["remaps"]]
    if task["op"] == "plan":
        result = api.plan(task["library"], "faceset_001", task["cache"], params, remaps=remaps, clock=clock)
    else:
        result = api.apply(task["library"], "faceset_001", task["cache"], params, remaps=remaps, clock=clock).result
    return {
        "laps": clock.laps, "counts": result.counts, "buckets": len(result.buckets),
        "eras": len(result.eras), "faces": sum(len(b.faces) for b in result.buckets),
    }


def _decode_encode(job):
    from era_split.plugin.host.crops import encode_png
    from PIL import Image, ImageOps

    path, boxes, size = job
    with Image.open(path) as im:
        im.load()
        shown = ImageOps.exif_transpose(im).convert("RGB")
    for box in boxes:
        encode_png(shown.crop(box).resize((size, size), Image.Resampling.LANCZOS))
    return len(boxes)


def floor_task(task):
    """Decode every photo once (full size) and encode every crop once: the work
    no implementation can skip on a cold run."""
    from collections import defaultdict
    from concurrent.futures import ProcessPoolExecutor

    from era_split.plugin import api
    from era_split.plugin.host.paths import parse_remap

    result = api.plan(task["library"], "faceset_001", task["cache"],
                      remaps=[parse_remap(r) for r in task["remaps"]])
    jobs = defaultdict(list)
    for b in result.buckets:
        for f in b.faces:
            jobs[f.path].append(f.box)
    work = [(p, boxes, result.params.size) for p, boxes in sorted(jobs.items())]
    start = time.perf_counter()
    if task["workers"] > 1:
        with ProcessPoolExecutor(task["workers"]) as pool:
            crops = sum(pool.map(_decode_encode, work, chunksize=4))
    else:
        crops = sum(map(_decode_encode, work))
    return {"seconds": time.perf_counter() - start, "photos": len(work), "crops": crops}


def cluster_task(task):
    """Sub-cluster n survivors of one shape (truth.cluster_shape): "seed-like" is the
    seed's distance distribution (mean pair ~0.45); the others stress the cut."""
    import hashlib

    from era_split.plugin.generate import truth
    from era_split.plugin.split import method

    n = task["n"]
    emb, years = truth.cluster_shape(task.get("shape", "seed-like"), n, seed=n)
    start = time.perf_counter()
    try:
        if task.get("plain"):
            labels = method.subcluster_plain(emb, 0.35, years, 0.05)
        else:
            labels = method.subcluster(emb, 0.35, years, 0.05)
    except ValueError as exc:
        return {"seconds": time.perf_counter() - start, "refused": str(exc), "clusters": 0, "digest": ""}
    return {"seconds": time.perf_counter() - start, "clusters": int(labels.max() + 1),
            "digest": hashlib.sha1(labels.tobytes()).hexdigest()}


def main():
    task = json.loads(sys.argv[1])
    op = task["op"]
    out = {"plan": split_task, "apply": split_task, "floor": floor_task, "cluster": cluster_task}[op](task)
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
