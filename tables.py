"""Tabular results as pandas DataFrames, for notebooks: one call on any result that is a table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas


class Tabular:
    """A result that is a table: `records()` gives its rows as plain dicts, `to_frame()` a DataFrame of them."""

    def records(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def to_frame(self) -> pandas.DataFrame:
        import pandas  # imported here: no command pays for pandas unless a DataFrame is asked for

        return pandas.DataFrame.from_records(self.records())
