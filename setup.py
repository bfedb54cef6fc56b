"""Packaging for influxhtm."""

from pathlib import Path

from setuptools import Extension, find_packages, setup

here = Path(__file__).parent
version = {}
exec((here / "influxhtm" / "_version.py").read_text(), version)

extras = {
    "plot": ["matplotlib>=3.7", "plotly>=5.0"],
    "dask": ["dask[distributed]>=2023.1"],
    "brainblocks": ["brainblocks==0.7.1"],
    "dataframe": ["pandas>=2.0"],
    # AsyncInfluxHtmClient's transport: h11 on asyncio streams (docs/async.rst)
    "async": ["h11>=0.14"],
    "test": [
        "h11>=0.14",
        "pytest>=7",
        "pytest-timeout>=2",
        "hypothesis>=6.80",
        "pandas>=2.0",
    ],
    "docs": ["sphinx>=7"],
    "lint": ["ruff>=0.4", "mypy>=1.8", "types-requests", "pandas-stubs", "pre-commit>=3"],
    "bench": ["psutil>=5.9"],
}
#: `all`: every optional feature of the library; `dev`: what working on it takes (tests, lint, docs, bench).
FEATURES = ("plot", "dask", "brainblocks", "dataframe")
TOOLS = ("test", "lint", "docs", "bench")
extras["all"] = sorted({req for name in FEATURES for req in extras[name]})
extras["dev"] = sorted({req for name in TOOLS for req in extras[name]})

setup(
    name="influxhtm",
    version=version["__version__"],
    description="InfluxDB for Hierarchical Temporal Memory systems: sensors, model results, live and batch runs",
    long_description=(here / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["influxhtm", "influxhtm.*"]),
    # Optional C encoders for line protocol: a failed build (no compiler) leaves the pure-Python ones.
    ext_modules=[
        Extension("influxhtm._speedups", ["influxhtm/_speedups.c"], optional=True),
        # Optional C row decoder for typed reads (rows.objects_of); the Python mapper is the reference.
        Extension("influxhtm._decode", ["influxhtm/_decode.c"], optional=True),
    ],
    package_data={"influxhtm": ["py.typed", "data/nab/*.txt", "data/nab/*.md", "data/nab/**/*"]},
    include_package_data=True,
    install_requires=[
        "influxdb>=5.3",
        "attrs>=23.1",
        "marshmallow>=3.19",
        "requests>=2.28",
        "msgpack>=1.0",
        "click>=8.1",
        "tqdm>=4.60",
        "pandas>=2.0",
        "numpy>=1.24",
    ],
    extras_require=extras,
    entry_points={
        "console_scripts": ["influxhtm = influxhtm.cli:main"],
        "pytest11": ["influxhtm = influxhtm.pytest_plugin"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Framework :: Pytest",
        "Topic :: Database",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
