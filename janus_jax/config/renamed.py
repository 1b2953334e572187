"""Fields that changed name: the old names stay accepted, with a
``DeprecationWarning`` naming the new one, wherever a user or an old run can
still write them (constructor keywords, ``--set`` keys, an old ``config.json``);
reading the old attribute gives the new field's value."""

from __future__ import annotations

import functools
import types
import warnings


class RenamedFieldWarning(DeprecationWarning):
    """An old field name was used (the command line prints these on stderr)."""


def renamed_fields(**renames: str):
    """Returns a class decorator: a config dataclass whose old field names
    (``old="new"``) its constructor still takes and its instances still read.

    The table is kept on the class as ``RENAMED`` for the JSON and ``--set``
    readers. The dataclass's own ``__init__`` is kept (wrapped), so its
    signature, defaults and checks are the dataclass's."""

    def decorate(cls):
        init = cls.__init__

        @functools.wraps(init)
        def __init__(self, **kwargs):
            init(self, **new_names(cls, kwargs, f"{cls.__name__}.", stacklevel=2))

        cls.__init__ = __init__
        cls.RENAMED = types.MappingProxyType(dict(renames))
        for old, new in renames.items():
            setattr(cls, old, _old_attribute(cls.__name__, old, new))
        return cls

    return decorate


def _old_attribute(owner: str, old: str, new: str) -> property:
    def read(self):
        warn(f"{owner}.{old}", f"{owner}.{new}", stacklevel=2)
        return getattr(self, new)

    return property(read, doc=f"Deprecated: the old name of ``{new}``.")


def renames_of(cls) -> dict[str, str]:
    """Returns ``cls``'s table of old field names to new ones (empty if none)."""
    return dict(getattr(cls, "RENAMED", {}))


def warn(old: str, new: str, stacklevel: int = 2) -> None:
    """Warns (RenamedFieldWarning, a DeprecationWarning) that ``old`` is now
    written ``new``."""
    warnings.warn(
        f"{old} is deprecated: write {new} (same meaning, same value)",
        RenamedFieldWarning,
        stacklevel=stacklevel + 1,
    )


def new_names(cls, data: dict, where: str, stacklevel: int = 2) -> dict:
    """Returns ``data`` (field name -> value) with ``cls``'s old names written
    anew, warning once per old name; an old name given beside its new one is a
    ValueError (which one was meant is not known)."""
    renames = renames_of(cls)
    if not renames or not set(data) & set(renames):
        return data
    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        # A dotted prefix (controller., ClassName.) belongs to both names.
        written = f"{where}{new}" if where.endswith(".") else new
        if new in out:
            raise ValueError(
                f"{where}{old} and {written} are both given: {old} is the old name "
                f"of {new}; give {new} only"
            )
        warn(f"{where}{old}", written, stacklevel + 1)
        out[new] = out.pop(old)
    return out
