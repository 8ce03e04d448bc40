"""``numba.njit`` with an on-disk cache wherever one can be written.

Compiled machine code is cached so that only the first process on a machine pays the
compilation (seconds). numba looks for a writable place in this order: ``$NUMBA_CACHE_DIR``,
the package's own ``__pycache__`` (an editable install), then the user cache directory
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``, used when site-packages is read-only). Where
none is writable numba refuses ``cache=True`` outright; we then compile in memory each process
rather than fail.
"""

from __future__ import annotations

from radeval.errors import DependencyError

try:
    import numba
except ImportError as e:  # the [coco] extra brings numba with the METEOR data files
    raise DependencyError(f"numba is not installed ({e}): pip install 'radeval-toolkit[coco]'") from e


def njit(fn=None, **options):
    """``@njit`` or ``@njit(inline="always")``: numba's, cached where possible."""
    if fn is None:
        return lambda f: njit(f, **options)
    try:
        return numba.njit(cache=True, **options)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(**options)(fn)
