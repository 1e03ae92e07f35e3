"""The README and docs/reference.md tell the truth: the test command CI runs,
every CLI flag, every hook, the roop snippet."""

import argparse
import os
import re

import pytest
from era_split.ui.cli import PARAM_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
REFERENCE = os.path.join(ROOT, "docs", "reference.md")
CI = os.path.join(ROOT, ".ci", "run")

pytestmark = pytest.mark.skipif(not os.path.isfile(README), reason="needs the source tree")


def test_ci_runs_the_readmes_test_command():
    ci = open(CI).read()
    cmd = re.search(r'^TEST_CMD="(.*)"$', ci, re.M).group(1)
    assert cmd in open(README).read()


def test_ci_checks_the_readmes_install_into_roop():
    """The command whose effect on roop's environment CI checks is the README's."""
    ci = open(CI).read()
    cmd = re.search(r'^ROOP_INSTALL="(.*)"$', ci, re.M).group(1)
    assert cmd in section(README, "## Use it inside roop-unleashed")
    assert "-c /tmp/roop-pins.txt" in cmd and "[scan]" not in cmd


@pytest.mark.parametrize("flag", sorted(PARAM_FLAGS))
def test_every_method_flag_is_documented(flag):
    assert f"`{flag}`" in open(REFERENCE).read()


def cli_flags() -> list[str]:
    from era_split.ui.cli import build_parser

    flags = set()
    for action in build_parser()._subparsers._group_actions:  # noqa: SLF001
        for sub in action.choices.values():
            for opt in sub._actions:  # noqa: SLF001
                if opt.help != argparse.SUPPRESS:
                    flags.update(o for o in opt.option_strings if o.startswith("--") and o != "--help")
    return sorted(flags)


@pytest.mark.parametrize("flag", cli_flags())
def test_every_cli_flag_is_documented(flag):
    assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", open(REFERENCE).read())


def section(path: str, title: str) -> str:
    text = open(path).read()
    start = text.index(title)
    end = text.find("\n## ", start + 5)
    return text[start:] if end < 0 else text[start:end]


def integrating_section() -> str:
    return section(REFERENCE, "## Integrating with a host")


def test_readme_links_point_at_reference_sections():
    """Every docs/reference.md#anchor the guide links to is a heading there."""
    headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", open(REFERENCE).read(), re.M)}
    anchors = re.findall(r"docs/reference\.md#([\w-]+)", open(README).read())
    assert anchors
    for anchor in anchors:
        assert anchor in headings, anchor


def test_readme_is_a_guide_in_the_promised_order():
    text = open(README).read()
    order = ["## Quick start", "## From your photos to eras", "## Use it inside roop-unleashed", "## Reference"]
    assert [text.index(h) for h in order] == sorted(text.index(h) for h in order)
    assert os.path.isfile(os.path.join(ROOT, "docs", "eras.png"))


@pytest.mark.parametrize("hook", ["faceset_actions", "register_tabs", "batch_actions", "era_variants"])
def test_every_hook_is_documented(hook):
    from era_split.hooks import hookspecs

    assert callable(getattr(hookspecs, hook))
    assert f"| `{hook}` |" in integrating_section()


def test_no_undocumented_hook():
    from era_split.hooks import hookspecs

    specs = [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), "faceset_tools_spec")]
    assert specs, "hookspecs carry pluggy's marker attribute"
    for name in specs:
        assert f"| `{name}` |" in integrating_section(), name


def test_roop_snippet_builds_the_tab_inside_a_roop_style_blocks(synth_lib):
    """Run the README's snippet the way roop-unleashed's ui/main.py builds its UI."""
    import gradio as gr

    code = section(README, "## Use it inside roop-unleashed").split("<!-- roop-snippet -->")[1].split("```python")[1].split("```")[0]
    namespace: dict = {}
    exec(compile(code, "README-snippet", "exec"), namespace)

    def faceswap_tab():
        with gr.Tab("🎭 Face Swap"):
            gr.Markdown("host tab")

    with gr.Blocks(title="roop-unleashed") as ui:
        with gr.Row(variant="compact"):
            gr.Markdown("roop-unleashed")
        faceswap_tab()
        namespace["era_split_tab"](synth_lib.root, synth_lib.cache_file, synth_lib.remaps)
    labels = [getattr(b, "label", None) for b in ui.blocks.values()]
    assert "Era split" in labels and "Faceset" in labels and "Era buckets (oldest first)" in labels
    dropdown = next(b for b in ui.blocks.values() if getattr(b, "label", None) == "Faceset")
    assert [c[0] if isinstance(c, tuple) else c for c in dropdown.choices] == ["faceset_001", "faceset_002"]


def test_the_guide_writes_nothing_into_the_clone():
    """Every library, cache and demo folder the README's commands name lives outside
    the clone (in the home folder, or the roop folder)."""
    text = open(README).read()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert blocks
    for flag, path in re.findall(r"(--cache|--library)\s+(\S+)", "\n".join(blocks)):
        assert path.startswith(("~/", "/")), (flag, path)
    assert "era-split demo\n" in text or "era-split demo`" in text  # the demo's default folder:
    from era_split.ui.cli import build_parser

    demo = build_parser()._subparsers._group_actions[0].choices["demo"]  # noqa: SLF001
    assert next(a.default for a in demo._actions if a.dest == "dir").startswith("~/")  # noqa: SLF001
