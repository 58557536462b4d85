"""What pyproject.toml cannot declare: the package list with the bundled queries mapped
in, and the optional C kernels.

``queries/`` stays at the top of the repository, where users read the queries and add
their own; a wheel (and an install from the sdist) carries it inside the package as
``caracal_forensics/queries_sql``, which ``caracal_forensics.queries`` looks at first.
An editable install or a bare checkout reads ``queries/`` where it is.

The C kernels: OpenSSL-backed bulk hashing for verify, jsonb::text rendering for the
JSON lines readers, and the ``tail --json`` lines from Arrow columns (no extra
libraries). ``optional``: without a compiler or OpenSSL headers the package still
installs, and verify falls back to DuckDB SQL and the pure-Python reference, which give
identical results (tested); ``tail --json`` to DuckDB's lines.

Metadata lives in pyproject.toml.
"""

from setuptools import Extension, find_packages, setup

QUERIES_PACKAGE = "caracal_forensics.queries_sql"

setup(
    packages=[
        *find_packages(include=["caracal_forensics", "caracal_forensics.*"]),
        QUERIES_PACKAGE,
    ],
    package_dir={QUERIES_PACKAGE: "queries"},
    package_data={
        "caracal_forensics": ["py.typed"],
        "caracal_forensics.spark": ["log4j2.properties"],  # a local session's logging
        QUERIES_PACKAGE: ["*.sql", "README.md"],
    },
    exclude_package_data={"": ["*.c"]},  # the kernels' sources stay in the sdist
    ext_modules=[
        Extension(
            "caracal_forensics.chain._native",
            ["caracal_forensics/chain/_native.c"],
            libraries=["crypto"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "caracal_forensics._jsonb_native",
            ["caracal_forensics/_jsonb_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "caracal_forensics.render._lines",
            ["caracal_forensics/render/_lines.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ],
)
