"""The optional compiled inner loop of `tcpclose analyze` (everything else is in pyproject.toml).

`tcpclose.analyze._fastscan` is built with the system's C compiler when there is one (gcc and
Python's headers: scripts/install-system-deps installs them as root); without them the build
goes on without it (`optional=True`) and the analyser takes its pure-Python path, which gives
the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tcpclose.analyze._fastscan",
            sources=["src/tcpclose/analyze/_fastscan.c"],
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
