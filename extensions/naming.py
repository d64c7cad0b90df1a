"""Names derived from the project name: the folder slug and the Python package name.

Copier loads this file by path (copier-template-extensions). The functions are plain so
that tests/ can call them without Jinja.
"""

from __future__ import annotations

import keyword
import re
import unicodedata

from jinja2 import Environment
from jinja2.ext import Extension

_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Short enough for a DNS label and for generated lines that embed the name to stay under 100 chars.
MAX_SLUG_LENGTH = 40


def slugify(name: str) -> str:
    """'Iris Classifier v2!' -> 'iris-classifier-v2' (ASCII, lowercase, dash-separated)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NON_ALNUM.sub("-", ascii_name.lower()).strip("-")


def package_name(name: str) -> str:
    """'Iris Classifier v2!' -> 'iris_classifier_v2', an importable module name."""
    return slugify(name).replace("-", "_")


def project_name_error(name: str) -> str:
    """Say what to change when a project name cannot give a valid slug and package; '' if fine."""
    package = package_name(name)
    if not package:
        return (
            "The project name needs at least one letter (a-z): "
            "it gives the folder and package names."
        )
    if package[0].isdigit():
        return (
            f"The project name must start with a letter: it gives the package name "
            f"'{package}', which Python cannot import."
        )
    if keyword.iskeyword(package) or package in _RESERVED_PACKAGES:
        return (
            f"The package name '{package}' would shadow a Python keyword or a library "
            "the service imports; choose another project name."
        )
    if len(slugify(name)) > MAX_SLUG_LENGTH:
        return (
            f"Shorten the project name to {MAX_SLUG_LENGTH} characters or fewer: "
            "it names the package, the service and its container."
        )
    return ""


# Packages the generated service imports: a project package of the same name would shadow them.
_RESERVED_PACKAGES = frozenset(
    {"app", "flask", "sklearn", "numpy", "scipy", "skops", "joblib", "pytest", "tests", "test"}
    | {"logging", "json"}
)


class NamingExtension(Extension):
    """Registers the naming filters with Copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["slugify"] = slugify
        environment.filters["package_name"] = package_name
        environment.filters["project_name_error"] = project_name_error
