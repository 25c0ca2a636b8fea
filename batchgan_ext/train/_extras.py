"""The training layer's optional dependencies (the `train` extra), imported where they are used, so that
``pip install batchgan_ext`` needs torch and numpy only and the ops never import them."""

import importlib
from types import ModuleType

__all__ = ["require"]

INSTALL_HINT = "install the training extra: pip install 'batchgan_ext[train]'"


def require(module: str, purpose: str) -> ModuleType:
    """Imports `module`, or raises an ImportError that says what needs it and which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = module.split(".")[0]
        raise ImportError(f"batchgan_ext.train: {purpose} needs {package}; {INSTALL_HINT}") from error
