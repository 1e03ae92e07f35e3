"""``era-split``: plan, apply, undo, check, the reference UI and the bundled demo.

Errors are one line on stderr naming the file and the problem, with a non-zero
exit status. ``plan`` and ``apply`` never import gradio (start-up time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence

from .errors import EraSplitError
from .params import ParamError, SplitParams
from .paths import parse_remap
from .pipeline import REASONS, SplitResult

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
        g.add_argument(flag, dest=name, type=typ, default=None,
                       help=f"{text} (default: {'scaled' if default is None else default})")


def _params(args: argparse.Namespace) -> SplitParams:
    given = {name: getattr(args, name) for name, _, _ in PARAM_FLAGS.values() if getattr(args, name) is not None}
    try:
        return SplitParams(**given)
    except ParamError as exc:
        flag = next((f for f, (name, _, _) in PARAM_FLAGS.items() if name == exc.field), exc.field)
        raise EraSplitError(None, f"{flag} {exc.problem}") from None


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


def format_report(result: SplitResult) -> str:
    c = result.counts
    p = result.params
    lines = [
        f"faceset {result.faceset}: cache {c['cache']} records, seed {c['seed']} faces",
        f"  candidates {c['candidates']} -> recovered {c['recovered']} -> gated {c['gated']} "
        f"-> survivors {c['survivors']} -> clustered {c['clustered']}",
        f"  {c['subclusters']} sub-clusters (largest {', '.join(map(str, result.raw_sizes[:10])) or '-'}); "
        f"{c['dated_paths']} of {c['paths']} paths dated",
        f"  anchor size {p.anchor_min} ({'scaled to the identity' if result.anchor_min_scaled else 'given'}); "
        f"{c['anchors']} anchors; {len(result.eras)} eras + {len(result.thin)} thin buckets",
    ]
    if c["left_out"]:
        lines.append("  left out: " + ", ".join(f"{k} {v}" for k, v in c["left_out"].items()))
    lines.append("")
    header = f"{'bucket':<32} {'kind':<5} {'faces':>5} {'year':>5} {'span':<10} reason"
    lines += [header, "-" * len(header)]
    for b in result.buckets:
        span = f"{b.span[0]}-{b.span[1]}" if b.span else "-"
        lines.append(
            f"{b.name:<32} {b.kind:<5} {len(b.faces):>5} {b.dom_year or '-':>5} {span:<10} "
            f"{REASONS.get(b.reason, b.reason)}"
            + (f" (+{b.fragments} fragment{'s' if b.fragments != 1 else ''})" if b.fragments else "")
        )
    return "\n".join(lines)


def cmd_plan(args: argparse.Namespace, write: bool) -> int:
    from . import api

    params = _params(args)
    progress = _Progress()
    kwargs = dict(progress=progress, force=args.force, **_sources(args))
    if write:
        report = api.apply(args.library, args.faceset, args.cache, params, **kwargs)
        result = report.result
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
    else:
        result = api.plan(args.library, args.faceset, args.cache, params, **kwargs)
    if args.json:
        out = result.to_json()
        if write:
            out["written"] = report.written
            out["removed"] = report.removed
            out["bundle_bytes"] = report.bundle_bytes
        print(json.dumps(out, indent=2))
    else:
        print(format_report(result))
        if write:
            print(f"\nwrote {len(report.written)} facesets into {args.library}"
                  + (f" (replaced {len(report.removed)})" if report.removed else ""))
    return 0


def cmd_undo(args: argparse.Namespace) -> int:
    from .writer import undo_report

    removed, warnings = undo_report(args.library, args.faceset, progress=_Progress())
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"removed {len(removed)} era/thin facesets of {args.faceset}" + "".join(f"\n  {r}" for r in removed))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import check_library

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
    from .exposure import check_port, exposure_notice, load_credentials
    from .library import open_library

    open_library(args.library)  # fail early, with one line, on a bad library
    for r in args.remap:
        parse_remap(r)
    roots = tuple(r for r in args.roots.split(",") if r) if args.roots else ()
    auth = load_credentials(args.host, args.auth_file, os.environ, unsafe=args.unsafe_no_auth)
    check_port(args.host, args.port)
    notice = exposure_notice(args.host, args.port, args.library, auth is not None)
    if notice:
        print(notice, file=sys.stderr, flush=True)
    from ..ui.host_app import serve  # gradio only here

    try:
        serve(args.library, args.cache, tuple(args.remap), roots, host=args.host, port=args.port, auth=auth)
    except OSError as exc:
        raise EraSplitError(f"{args.host}:{args.port}", f"cannot serve: {exc.strerror or exc}") from None
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import api, synth

    out = os.path.abspath(args.dir)
    if os.path.exists(out) and not os.path.isdir(out):
        raise EraSplitError(out, "exists and is not a folder; pick another place for the demo")
    if os.path.exists(os.path.join(out, "facesets_swap_ready")):
        raise EraSplitError(out, "already holds a demo library; remove it or pick another folder")
    print(f"writing a demo photo archive and library under {out} ...", file=sys.stderr)
    lib = synth.generate(out, synth.SynthSpec(seed=args.seed))
    remaps = [parse_remap(r) for r in lib.remaps]
    print(
        "\nequivalent commands:\n"
        f"  era-split plan faceset_001 --library {lib.root} --cache {lib.cache_file} --remap '{lib.remaps[0]}'\n"
        f"  era-split apply faceset_001 ... (same options)\n",
        file=sys.stderr,
    )
    report = api.apply(lib.root, "faceset_001", lib.cache_file, remaps=remaps, progress=_Progress())
    print(format_report(report.result))
    print(f"\nwrote {len(report.written)} facesets into {lib.root}:")
    for rel in report.written:
        print(f"  {rel}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="era-split",
        description="Split one identity's faceset into era facesets by face-embedding sub-clusters and photo dates.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "analyse and print the buckets; writes nothing but caches"),
                       ("apply", "analyse and write the era facesets into the library")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("faceset", help="name of the faceset in the library manifest")
        _add_source_args(p)
        _add_param_args(p)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--force", action="store_true",
                       help="go on when most photos cannot be read, and let a split that lost most "
                            "of its faces replace the current one")
    p = sub.add_parser("undo", help="remove everything the plugin made for a faceset")
    p.add_argument("faceset")
    p.add_argument("--library", required=True)
    p = sub.add_parser("ui", help="serve the reference host app with the era tab (Gradio)")
    _add_source_args(p)
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to serve on (default 127.0.0.1). Any other address needs a login: "
                        "--auth-file or ERA_SPLIT_AUTH=user:password")
    p.add_argument("--auth-file", default=None, metavar="FILE",
                   help="file of user:password lines; required off loopback (or ERA_SPLIT_AUTH)")
    p.add_argument("--unsafe-no-auth", action="store_true",
                   help="serve off loopback without a login: anyone who reaches the port can "
                        "split, undo and see face crops")
    p = sub.add_parser("check", help="validate a library; exit status 1 when something is wrong")
    p.add_argument("--library", required=True)
    p.add_argument("--repair", action="store_true",
                   help="finish or roll back an interrupted write and drop leftover staging folders")
    p = sub.add_parser("demo", help="write a small generated library and split it")
    p.add_argument("dir", nargs="?", default="era-split-demo", help="folder to create (default: ./era-split-demo)")
    p.add_argument("--seed", type=int, default=7, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("plan", "apply"):
            return cmd_plan(args, write=args.command == "apply")
        if args.command == "undo":
            return cmd_undo(args)
        if args.command == "ui":
            return cmd_ui(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "demo":
            return cmd_demo(args)
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
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
