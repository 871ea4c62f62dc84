"""Old import paths, kept working for one release.

Before 0.2 every module sat in one flat folder (``exact_inj.engine``,
``exact_inj.checker``, ``exact_inj.certificate``, ...).  Importing one of those
names now gives a module assembled from the public names of the modules that
took its place, with a DeprecationWarning naming them.  Packages that kept
their name (``exact_inj.model``, ``exact_inj.io``, ``exact_inj.network``,
``exact_inj.verdict``, ``exact_inj.api``, ``exact_inj.cli``) re-export their
old public names themselves.  This module goes away in the next release.

>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore")
...     from exact_inj.checker import check
>>> check.__module__
'exact_inj.certify.check'
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

__all__ = ["MOVED"]

MOVED: dict[str, tuple[str, ...]] = {
    "exact_inj.argtypes": ("exact_inj.cli.argtypes",),
    "exact_inj.backend": ("exact_inj.solver",),
    "exact_inj.certificate": ("exact_inj.certify.schema", "exact_inj.model.domain"),
    "exact_inj.checker": ("exact_inj.certify.check", "exact_inj.certify.layer", "exact_inj.certify.network"),
    "exact_inj.compare": ("exact_inj.studies.compare",),
    "exact_inj.construct": ("exact_inj.studies.construct",),
    "exact_inj.conv": ("exact_inj.model.conv", "exact_inj.errors"),
    "exact_inj.convproof": ("exact_inj.layer.convproof",),
    "exact_inj.endtoend": ("exact_inj.network.endtoend",),
    "exact_inj.engine": ("exact_inj.layer.decide", "exact_inj.layer.rules", "exact_inj.network.decide",
                         "exact_inj.verdict", "exact_inj.run", "exact_inj.model.conv"),
    "exact_inj.exact_lp": ("exact_inj.exact.lp",),
    "exact_inj.experiment": ("exact_inj.studies.experiment", "exact_inj.studies.experiment.cli",
                             "exact_inj.studies.experiment.output", "exact_inj.studies.experiment.params",
                             "exact_inj.studies.experiment.stats", "exact_inj.studies.experiment.store",
                             "exact_inj.studies.experiment.trials"),
    "exact_inj.folds": ("exact_inj.network.folds",),
    "exact_inj.formulation": ("exact_inj.layer.formulation",),
    "exact_inj.heuristics": ("exact_inj.studies.heuristics",),
    "exact_inj.linalg": ("exact_inj.exact.linalg",),
    "exact_inj.milp_worker": ("exact_inj.layer.milp_worker",),
    "exact_inj.modrank": ("exact_inj.exact.modrank",),
    "exact_inj.onnx_import": ("exact_inj.io.onnx",),
    "exact_inj.pieces": ("exact_inj.model.pieces",),
    "exact_inj.search": ("exact_inj.layer.search", "exact_inj.layer.data", "exact_inj.layer.repair"),
    "exact_inj.stability": ("exact_inj.studies.stability", "exact_inj.studies.stability.cli",
                            "exact_inj.certify.stability", "exact_inj.exact.sigma"),
    "exact_inj.torch_import": ("exact_inj.io.torch",),
    "exact_inj.vnnlib": ("exact_inj.io.vnnlib",),
}
"""Old module name -> the modules its public names now live in, first match wins."""


def _public(module) -> list[str]:
    # Every public name, not only __all__ (the old modules were used that
    # way), but no submodule: exact_inj.experiment.run was a function.
    return [k for k, v in vars(module).items() if not k.startswith("_") and not isinstance(v, types.ModuleType)]


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers only for the names in :data:`MOVED`; everything else is left
    to Python's own finders."""

    def find_spec(self, fullname, path, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        targets = MOVED[module.__name__]
        warnings.warn(f"{module.__name__} has moved to {', '.join(targets)}; the old path goes away in the next "
                      "release (docs/architecture.md)", DeprecationWarning, stacklevel=2)
        for name in reversed(targets):  # earlier targets win
            new = importlib.import_module(name)
            for key in _public(new):
                setattr(module, key, getattr(new, key))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
