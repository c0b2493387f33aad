"""Package discovery for the one `finsentry.*` namespace over the repo's top-level folders.

pyproject.toml holds the metadata; this file only maps folders to import names, which
setuptools cannot discover on its own for a non-matching layout.
"""

from setuptools import find_packages, setup

ROOTS = {
    "finsentry": "finsentry",
    "finsentry.streams": "streams",
    "finsentry.models": "models",
    "finsentry.training": "training",
    "finsentry.dashboards": "dashboards",
    "finsentry.store": "store",
    "finsentry.ingest": "ingest",
    "finsentry.alerting": "alerting",
}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(
    packages=packages,
    package_dir=ROOTS,
    package_data={
        "": [
            "*.json",
            "*.safetensors",
            "*.md",
            "*.jsonl",
            "*.jsonl.gz",
            "*.js",
            "*.html",
            "*.css",
            "*.yml",
            "*.yaml",
            "*.txt",
            "*.csv",
            "LICENSE*",
            "*.ico",
        ]
    },
    include_package_data=True,
)
