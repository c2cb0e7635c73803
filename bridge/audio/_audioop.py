"""The one place that imports ``audioop``.

Python 3.11/3.12 ship it in the stdlib (deprecated, with a DeprecationWarning on
import); 3.13 removed it and the ``audioop-lts`` package (a dependency with a version
marker) provides the same module name.  Everything else uses :mod:`bridge.audio.g711`
or this module, so the import and its warning are handled once.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings(
        "ignore", message="'audioop' is deprecated", category=DeprecationWarning
    )
    import audioop

__all__ = ["audioop"]
