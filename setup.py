"""Only the optional C extension of issue 18 (counts); everything else is in pyproject.toml.

``optional=True``: without a C compiler or Python's headers the build of the extension fails with
a warning and pytest-perfgate installs as pure Python; ``pytest_perfgate.counts.native()`` then
raises an error naming what to install. valgrind's headers are optional too: without
``valgrind/callgrind.h`` the extension is built with the allocation counter only.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pytest_perfgate.counts._native",
            sources=["src/pytest_perfgate/counts/_native.c"],
            optional=True,
        )
    ]
)
