"""fixtures/make_fixtures.py, the script that writes the bundled fixtures, as a module.

It lives beside the fixtures it writes, outside any package, so it is loaded from its
path rather than by putting fixtures/ on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys

from support.paths import FIXTURES


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, FIXTURES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


make_fixtures = _load("make_fixtures")
