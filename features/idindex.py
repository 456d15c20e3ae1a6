"""IdIndex: the one mapping between external ids and matrix rows/columns (lightfm's Dataset idea)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd


class IdIndex:
    """An ordered, immutable set of external string ids with O(1) lookup both ways.

    ``ids`` keeps first-seen order; row ``i`` of every matrix built on this index belongs to ``ids[i]``.
    """

    def __init__(self, ids: Iterable[str] = ()) -> None:
        values = pd.Index(pd.unique(np.asarray(list(ids), dtype=object)), dtype=object)
        self._index = values
        self._ids: np.ndarray = values.to_numpy(dtype=object)

    @classmethod
    def from_index(cls, index: pd.Index) -> IdIndex:
        return cls(index.astype(str).tolist())

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdIndex) and np.array_equal(self._ids, other._ids)

    def __hash__(self) -> int:
        return hash(tuple(self._ids))

    def __repr__(self) -> str:
        return f"IdIndex({len(self)} ids)"

    @property
    def ids(self) -> np.ndarray:
        """The external ids, object dtype, shape (n,)."""
        return self._ids

    def row(self, external_id: str) -> int:
        """The row of one id; KeyError when unknown."""
        return int(self._index.get_loc(external_id))

    def rows(self, external_ids: Sequence[str] | np.ndarray | pd.Series, missing: int = -1) -> np.ndarray:
        """Rows of many ids as int64, shape (n,); unknown ids map to ``missing``."""
        positions = self._index.get_indexer(pd.Index(np.asarray(external_ids, dtype=object)))
        if missing != -1:
            positions = np.where(positions < 0, missing, positions)
        return positions.astype(np.int64, copy=False)

    def id(self, row: int) -> str:
        return str(self._ids[row])

    def to_list(self) -> list[str]:
        return [str(x) for x in self._ids]
