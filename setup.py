"""Map the top-level folders onto the `cosparse` package and its subpackages.

pyproject.toml cannot express "sw/ is cosparse.sw and every package below it
follows", so this file computes the package list; all metadata stays in
pyproject.toml. The package itself (its ``__init__``: the Python API) lives
in api/, a folder not named ``cosparse`` so that a checkout's working
directory never shadows an installed cosparse with a package that has no
subpackages beside it.
"""
from setuptools import find_packages, setup

SUBPACKAGES = ("sw", "hw", "sim", "boards")

packages, package_dir = ["cosparse"], {"cosparse": "api"}
for top in SUBPACKAGES:
    package_dir[f"cosparse.{top}"] = top
    packages.append(f"cosparse.{top}")
    packages += [f"cosparse.{top}.{sub}" for sub in find_packages(top)]

setup(packages=packages, package_dir=package_dir)
