"""Every path the tests read, found from here and nowhere else.

Test files import these constants (a parametrize list needs them at collection time);
tests/conftest.py serves the most used ones as fixtures too.
"""

from __future__ import annotations

from pathlib import Path

#: The repository checkout (README.md, queries/, notebooks/, bench/, fixtures/).
ROOT = Path(__file__).resolve().parents[2]
#: The library's source tree.
PACKAGE = ROOT / "caracal_forensics"
TESTS = ROOT / "tests"

#: The PostgreSQL-made vectors: 240 chained events in every export shape, and their key.
VECTOR_EXPORT = TESTS / "vectors" / "export"
VECTOR_KEY_FILE = VECTOR_EXPORT / "key.hex"
#: Other vectors (jsonb text as PostgreSQL renders it, ...).
VECTORS = TESTS / "vectors"
#: Caracal's own Admin API exports (FORMAT.md 6): a JSON page and the CSV per zone, and
#: an explain trace.
VECTOR_API = VECTORS / "upstream" / "api"

#: The bundled fixtures users try the tool on (fixtures/make_fixtures.py writes them).
FIXTURES = ROOT / "fixtures"
FIXTURE_EXPORT = FIXTURES / "export"
FIXTURE_KEY_FILE = FIXTURES / "key.hex"
#: A small incident in both chains (fixtures/make_incident.py): events and admin changes.
FIXTURE_INCIDENT = FIXTURES / "incident"
#: Admin changes in every admin export shape (fixtures/make_admin_fixtures.py).
FIXTURE_ADMIN = FIXTURES / "admin"

#: Test data: the seed's recipes and the like.
DATA = TESTS / "data"
#: Caracal's upstream schema, loaded into the test PostgreSQL.
SCHEMA = TESTS / "sql" / "audit_schema.sql"
