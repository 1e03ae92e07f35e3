"""The README tells the truth: the test command CI runs and every CLI flag."""

import os
import re

import pytest

from era_split.plugin.cli import PARAM_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
CI = os.path.join(ROOT, ".ci", "run")

pytestmark = pytest.mark.skipif(not os.path.isfile(README), reason="needs the source tree")


def test_ci_runs_the_readmes_test_command():
    ci = open(CI).read()
    cmd = re.search(r'^TEST_CMD="(.*)"$', ci, re.M).group(1)
    assert cmd in open(README).read()


@pytest.mark.parametrize("flag", sorted(PARAM_FLAGS))
def test_every_method_flag_is_documented(flag):
    assert f"`{flag}`" in open(README).read()
