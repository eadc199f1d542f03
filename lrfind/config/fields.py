"""What every config model checks field by field: strict models (unknown keys refused, no
NaN/inf, no YAML boolean where a number belongs), finite ``args``, built-in names or import paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from lrfind.format import did_you_mean

#: Integers in ``args`` beyond int64 cannot reach torch or numpy.
_INT64_MAX = 2**63 - 1


def finite_values(value: Any, path: str = "") -> None:
    """Raise a ``bad_number`` error naming the first NaN/inf float or beyond-int64 integer.

    The error's context holds ``path``, the dotted path inside ``value``, so the loader can name
    the exact key (``model.args.hidden.0``).
    """
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError(
            "bad_number", "must be a finite number, got {value}", {"path": path, "value": value}
        )
    if isinstance(value, int) and abs(value) > _INT64_MAX:
        raise PydanticCustomError(
            "bad_number",
            "is too large ({value}); at most 2**63 - 1",
            {"path": path, "value": value},
        )
    if isinstance(value, dict):
        for key, item in value.items():
            finite_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            finite_values(item, f"{path}.{index}" if path else str(index))


def finite_args(value: dict[str, Any]) -> dict[str, Any]:
    finite_values(value)
    return value


def is_import_path(target: str) -> bool:
    """Return True when ``target`` is an import path ("pkg.mod:callable" or "pkg.mod.Callable")."""
    return ":" in target or "." in target


def accepts_bool(annotation: Any) -> bool:
    """Whether a field annotated ``annotation`` takes True/False as they are."""
    if annotation is bool or annotation is Any:
        return True
    if get_origin(annotation) is Literal:
        return any(isinstance(choice, bool) for choice in get_args(annotation))
    return any(accepts_bool(arg) for arg in get_args(annotation))


def takes_number(annotation: Any) -> bool:
    """Whether a field annotated ``annotation`` takes an int or a float."""
    if annotation in (int, float):
        return True
    return any(takes_number(arg) for arg in get_args(annotation))


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads YAML's true/false (and yes/no/on/off) as 1/0 for a number field, so a
        # slip like "batch_size: yes" would run with batch size 1 instead of failing.
        if isinstance(value, bool) and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            annotation = None if field is None else field.annotation
            if takes_number(annotation) and not accepts_bool(annotation):
                word = "true" if value else "false"
                raise ValueError(
                    f"expected a number, got the boolean {word} (YAML reads true/false, yes/no "
                    "and on/off as booleans)"
                )
        return value


def check_builtin(value: str, builtins: Sequence[str], what: str) -> str:
    if is_import_path(value) or value in builtins:
        return value
    hint = did_you_mean(value, builtins)
    raise ValueError(
        f"unknown built-in {what} '{value}'{hint}; built-ins: {', '.join(builtins)}; "
        "or give an import path 'pkg.module:callable'"
    )
