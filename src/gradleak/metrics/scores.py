"""``Scores``: the read-only, dict-like result of :func:`gradleak.evaluate`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def _plain(value: Any) -> Any:
    """Copies ``value`` into plain Python (dict, list, float, int, str, bool, None)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


class Scores(Mapping[str, Any]):
    """A read-only mapping of metric names to values, with attribute access.

    ``scores["psnr"]``, ``scores.psnr``, ``scores.keys()``, ``dict(scores)`` and
    ``scores.to_dict()`` (plain Python, ready for ``json.dumps``) all work.

    Example:
        >>> s = Scores({"psnr": 20.0, "ssim": 0.5})
        >>> s["psnr"], s.ssim, list(s)
        (20.0, 0.5, ['psnr', 'ssim'])
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", _plain(data))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_data":
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"Scores has no metric {name!r}; it has {list(self._data)}"
            ) from None

    def __reduce__(self) -> tuple[Any, ...]:
        return (Scores, (self._data,))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Scores are read-only; copy them with to_dict()")

    def to_dict(self) -> dict[str, Any]:
        """A deep copy in plain Python types (``json.dumps`` works; inf stays a float)."""
        return _plain(self._data)

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON (non-finite numbers written as the strings ``"inf"``/``"nan"``)."""
        from gradleak.persistence.jsonio import dumps

        return dumps(self.to_dict(), **kwargs)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._data.items() if not isinstance(v, list | dict)}
        body = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in shown.items()
        )
        return f"Scores({body})"
