"""Build the optional C kernels: OpenSSL-backed bulk hashing for verify, and jsonb::text
rendering for the JSON lines readers (no extra libraries).

Metadata lives in pyproject.toml; this file only declares the extension. ``optional``:
without a compiler or OpenSSL headers the package still installs, and verify falls back
to DuckDB SQL and the pure-Python reference, which give identical results (tested).
"""

from setuptools import Extension, setup

setup(
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
    ]
)
