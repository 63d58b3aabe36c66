"""Packages whose `__init__` imports far more than a pipeline run uses, run only when used.

- `tfx.components`: its `__init__` imports every TFX component (Tuner: keras_tuner, Keras 3 and
  matplotlib; InfraValidator: kubernetes; BulkInferrer, Transform, ...), and TFX's own resolver
  code reaches it (`tfx.components.evaluator.constants`), so importing component modules
  directly is not enough: any `tfx.components.<x>` import runs that `__init__` first.
- `nltk`, `nltk.stem`: TFMA's ROUGE metric imports them at module level (rouge_score needs only
  `nltk.stem.porter`; `nltk.stem` imports every stemmer, WordNet's corpus reader included).
- `google.cloud.bigquery`, `tqdm.notebook`: Beam's BigQuery IO imports the BigQuery client (used
  only when a pipeline reads or writes BigQuery), which imports tqdm.notebook for notebook
  progress bars, which imports IPython.
- `tensorflow_model_analysis.view`: its `__init__` imports TFMA's Jupyter widgets (ipywidgets,
  IPython); TFMA itself needs only its submodules `view.util` and `view.view_types`.
- `IPython`: TFDV imports `IPython.display` for notebook output; the package's `__init__`
  imports the whole interactive shell. In a notebook IPython is already imported and stays so.

A deferred package is created with its `__path__`, so its submodules import as usual; its own
`__init__` runs at the first access to one of its names that is not a submodule (`from
tfx.components import Tuner`, `nltk.download`, `tqdm.notebook.tqdm`, `tfma.view.render_plot`):
code that uses them gets the real package.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Sequence

# Names a deferred package answers from one light submodule, its own __init__ not run: libraries
# probe `sys.modules["IPython"].get_ipython()` to detect a notebook (TFDS, tqdm).
_ANSWERED_BY = {("IPython", "get_ipython"): "IPython.core.getipython"}

DEFERRED = (
    "tfx.components",
    "nltk",
    "nltk.stem",
    "google.cloud.bigquery",
    "tqdm.notebook",
    "tensorflow_model_analysis.view",
    "IPython",
)
_RUNNING = threading.RLock()  # one thread runs a deferred module's code; others wait for it


class _DeferredModule(types.ModuleType):
    """A module whose code has not run yet; the first missing attribute runs it."""

    def __getattr__(self, name: str):
        if name.startswith("__") and name != "__all__":  # probes such as __wrapped__ or __path__ lookups
            raise AttributeError(name)
        if (self.__name__, name) in _ANSWERED_BY:
            return getattr(importlib.import_module(_ANSWERED_BY[self.__name__, name]), name)
        submodule = f"{self.__name__}.{name}"
        if hasattr(self, "__path__") and importlib.machinery.PathFinder.find_spec(submodule, self.__path__):
            return importlib.import_module(submodule)  # `from nltk import redos`: a submodule, no __init__ needed
        _run(self)
        return getattr(self, name)


def _run(module: types.ModuleType) -> None:
    """Run the module's real code in place (its own imports see a plain module); when it fails,
    the module leaves sys.modules, as a failed import does."""
    with _RUNNING:
        if not isinstance(module, _DeferredModule):
            return  # another thread ran it
        spec = module.__spec__
        assert spec is not None and isinstance(spec.loader, _DeferringLoader)  # set by _DeferringFinder
        loader = spec.loader.real
        module.__class__ = types.ModuleType  # type: ignore[assignment]  # back to a plain module, in place
        spec.loader = module.__loader__ = loader
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module.__name__, None)
            raise


class _DeferringLoader(importlib.abc.Loader):
    """Creates the module as usual but leaves running its code to the first attribute access."""

    def __init__(self, real: importlib.abc.Loader):
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__class__ = _DeferredModule


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the deferred names with the other finders and hands them a deferring loader."""

    def __init__(self, names: Sequence[str]):
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is None or not hasattr(spec.loader, "exec_module"):
                    return None  # namespace or legacy loader: import it as usual
                spec.loader = _DeferringLoader(spec.loader)
                return spec
        return None


def defer_unused_imports(names: Sequence[str] = DEFERRED) -> None:
    """Defer `names` in this process (idempotent; a name already imported stays as it is)."""
    if not any(isinstance(finder, _DeferringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _DeferringFinder(names))


def is_deferred(name: str) -> bool:
    """Whether `name` is imported but its code has not run yet."""
    return isinstance(sys.modules.get(name), _DeferredModule)
