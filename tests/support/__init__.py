"""What the tests share: paths, the CLI runner, PostgreSQL, data builders.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in pyproject.toml's
``[tool.pytest.ini_options]``), so test files import this package by its name
(``from support.paths import VECTOR_EXPORT``); fixtures over it live in tests/conftest.py.
"""
