"""Map the top-level folders onto subpackages of the `cosparse` namespace.

pyproject.toml cannot express "sw/ is cosparse.sw and every package below it
follows", so this file computes the package list; all metadata stays in
pyproject.toml.
"""
from setuptools import find_packages, setup

SUBPACKAGES = ("sw", "hw", "sim", "boards")

packages, package_dir = [], {}
for top in SUBPACKAGES:
    package_dir[f"cosparse.{top}"] = top
    packages.append(f"cosparse.{top}")
    packages += [f"cosparse.{top}.{sub}" for sub in find_packages(top)]

setup(packages=packages, package_dir=package_dir)
