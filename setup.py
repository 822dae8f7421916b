"""Build script for tornpool.

The C codec (``tornpool/codec/_speedups.c``) is optional.  ``TORNPOOL_BUILD_EXT``
decides what happens when it cannot be built:

* unset: try, and fall back to the pure-Python twin with a visible warning;
* ``1``: required -- a failed build fails the install (CI sets this);
* ``0``: skip the extension entirely.
"""

import glob
import os
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

MODE = os.environ.get("TORNPOOL_BUILD_EXT", "").strip()


class OptionalBuildExt(build_ext):
    """build_ext that honours TORNPOOL_BUILD_EXT instead of always failing."""

    def run(self) -> None:
        if MODE == "0":
            print("tornpool: TORNPOOL_BUILD_EXT=0, skipping the C codec", file=sys.stderr)
            return
        # Always rebuild: a stale object in build/ must never hide a broken .c file.
        self.force = True
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - setuptools raises assorted types
            self._fallback(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._fallback(exc)

    def _fallback(self, exc: BaseException) -> None:
        if MODE == "1":
            raise
        print(
            "\n*** WARNING: tornpool's C codec could not be built (%s); "
            "the pure-Python codec will be used. ***\n" % (exc,),
            file=sys.stderr,
        )


ext_modules = []
if MODE != "0":
    ext_modules.append(
        Extension(
            "tornpool.codec._speedups",
            sources=["tornpool/codec/_speedups.c"],
            # the parts _speedups.c #includes: a change to any rebuilds it
            depends=sorted(glob.glob("tornpool/codec/_*.h")),
            extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    )

# The docs site: Sphinx reading the Markdown guides (MyST) and the docstrings.
DOCS = ["sphinx>=7.2", "myst-parser>=2.0", "furo>=2024.1"]

# greentor_compat.django: Django's MySQL backend on PyMySQL through the pool.
# 5.2 is the LTS that runs on Python 3.10+; 6.0 needs Python 3.12.
DJANGO = ["Django>=5.2,<6.1"]

setup(
    name="tornpool",
    version="0.1.0",
    description="Tornado/asyncio connection pool for MySQL and MariaDB: PyMySQL over IOStream through greenlets",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["tornpool", "tornpool.*", "greentor_compat", "greentor_compat.*"]),
    package_data={"tornpool": ["py.typed"], "greentor_compat": ["py.typed"],
                  "tornpool.codec": ["_speedups.pyi", "_speedups.c", "_*.h"]},
    install_requires=[
        "tornado>=6.5",
        "greenlet>=3",
        # tornpool/_pymysql.py touches PyMySQL internals; tox tests both ends of this range.
        "PyMySQL>=1.1.1,<1.3",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-tornado>=0.8.1",
            # pytest-tornado imports pkg_resources, removed in setuptools 82.
            "setuptools<82",
            "hypothesis>=6.100",
            "cryptography>=42",
            # the bench smoke test renders the report's plots
            "matplotlib>=3.7",
            # the dashboard's browser test drives Debian's chromium + chromium-driver
            "selenium>=4.10",
            # the suite builds the docs site (tests/test_docs_build.py)
            *DOCS,
            # tornpool.dbapi.ExecutorPool is tested over these drivers (mysqlclient
            # builds against libmariadb: scripts/dev.sh installs libmariadb-dev)
            "mysqlclient>=2.2",
            "psycopg[binary]>=3.1",
            # greentor_compat.django is tested against a real server
            *DJANGO,
        ],
        "docs": DOCS,
        "django": DJANGO,
        "bench": [
            "aiomysql>=0.2",
            "asyncmy>=0.2.9",
            "mysqlclient>=2.2",
            "tormysql>=0.4",
            "psutil>=5.9",
            # bench report: PNG plots of the results.
            "matplotlib>=3.7",
        ],
        "dev": ["mypy>=1.10", "tox>=4"],
    },
    ext_modules=ext_modules,
    cmdclass={"build_ext": OptionalBuildExt},
    zip_safe=False,
)
