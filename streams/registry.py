"""The firm register: which industry (and size) each firm belongs to.

Events do not carry a firm's industry; the bank's customer master does. riskmon reads it from a
JSON-lines file with at least ``firm_id`` and ``industry`` per line (a simulation's
``truth.jsonl`` qualifies; its labels are ignored).
"""

from __future__ import annotations

from pathlib import Path

import orjson

DEFAULT_INDUSTRY = "default"


class FirmRegistry:
    """>>> reg = FirmRegistry({"F1": "manufacturing"})
    >>> reg.industry_of("F1"), reg.industry_of("F2")
    ('manufacturing', 'default')
    """

    def __init__(self, industries: dict[str, str] | None = None) -> None:
        self._industries = dict(industries or {})

    def industry_of(self, firm_id: str) -> str:
        return self._industries.get(firm_id, DEFAULT_INDUSTRY)

    def __len__(self) -> int:
        return len(self._industries)

    @classmethod
    def from_file(cls, path: Path | str | None) -> "FirmRegistry":
        if path is None:
            return cls()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"firm register {path} does not exist")
        industries: dict[str, str] = {}
        with path.open("rb") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = orjson.loads(line)
                    industries[str(row["firm_id"])] = str(row["industry"])
                except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{lineno}: not a firm record ({exc})") from None
        return cls(industries)
