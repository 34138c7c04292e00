"""Your own data from files (.csv, .npz), and `as_dataset`: whatever a user wrote -> a Dataset.

Files are read as text or as numeric arrays only: an .npz is opened with
``allow_pickle=False``, so nothing is ever unpickled.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from trainlab import check
from trainlab.data.bundled import DATASETS
from trainlab.data.dataset import TASKS, Dataset, Task, _expect_dataset, _make, from_arrays
from trainlab.errors import InputError, InputTypeError, did_you_mean


def from_csv(
    path: str | Path,
    *,
    target: str | int = -1,
    header: bool | None = None,
    name: str | None = None,
    task: Task | None = None,
) -> Dataset:
    """Read a CSV file of numeric feature columns and one target column.

    The delimiter is the first of ``,``, tab, ``;`` found in the first line.
    With ``header=None`` the first row is a header when some column holds text
    there but a number in the second row; a `target` given by name implies a
    header. Target column rules: text values are class labels, mapped to
    0..k-1 in sorted order and kept in `class_names`; integers ("3") are class
    labels; other numbers ("3.5") are regression targets. Pass `task` to
    overrule this, e.g. ``task="regression"`` for an integer-valued target.

    Args:
        path: the .csv file.
        target: the target column's name (needs a header) or index (-1: the last column).
        header: whether the first row holds column names; None detects it.
        name: the data set's name; default the file name without its suffix.
        task: "classification" or "regression"; None infers it as above.

    Raises:
        InputError: a missing file, rows of different lengths, a feature cell
            that is empty or not a number (the message names the line and
            column), an unknown target column.

    Example:
        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> path = os.path.join(folder, "flowers.csv")
        >>> with open(path, "w") as f:
        ...     _ = f.write("petal,sepal,species\\n1.4,5.1,setosa\\n4.7,7.0,versicolor\\n")
        >>> data = from_csv(path, target="species")
        >>> data.class_names, data.y.tolist(), data.feature_names
        (('setosa', 'versicolor'), [0, 1], ('petal', 'sepal'))
    """
    file = _existing_file(path, "from_csv")
    name = name if name is not None else file.stem
    if header is not None and not isinstance(header, bool):
        raise InputTypeError(f"from_csv: header must be True, False or None, got {header!r}")
    if isinstance(target, bool) or not isinstance(target, (str, int)):
        raise InputTypeError(f"from_csv: target must be a column name or index, got {target!r}")
    if task is not None:
        check.choice("from_csv: task", task, TASKS)
    rows = _read_csv_rows(file)
    if isinstance(target, str):
        if header is False:
            raise InputError(
                f"from_csv: target={target!r} is a column name, but header=False says {file} has no header "
                "row. Give the target as a column index, or set header=True."
            )
        header = True
    if header is None:
        header = _looks_like_header(rows)
    columns: list[str] | None = None
    if header:
        columns = rows[0][1]
        rows = rows[1:]
    if not rows:
        raise InputError(f"from_csv: {file} has no data rows{' after its header' if header else ''}.")
    width = len(columns) if columns is not None else len(rows[0][1])
    for line, row in rows:
        if len(row) != width:
            raise InputError(
                f"from_csv: {file} line {line} has {len(row)} fields, expected {width} as in the "
                f"{'header' if columns is not None else 'first row'}. Check for a missing or extra delimiter."
            )
    if width < 2:
        raise InputError(
            f"from_csv: {file} has {width} column; it needs feature columns and a target column."
        )
    target_at = _target_index(target, columns, width, file)
    labels = [columns[i] if columns is not None else f"column {i}" for i in range(width)]
    feature_at = [i for i in range(width) if i != target_at]

    x = _csv_features(rows, feature_at, file, labels)
    target_cells = [(line, row[target_at]) for line, row in rows]
    y, class_names = _csv_target(target_cells, file, labels[target_at], task)
    return _make(
        x, y, name=name, task=task if task is not None else ("classification" if class_names else None),
        num_classes=len(class_names) if class_names else None,
        feature_names=[labels[i] for i in feature_at] if columns is not None else None,
        class_names=class_names or None,
    )


def _read_csv_rows(file: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) of every non-blank row."""
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"from_csv: {file} is not a UTF-8 text file ({error}).") from error
    first_line = text.split("\n", 1)[0]
    delimiter = next((d for d in (",", "\t", ";") if d in first_line), ",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    for row in reader:
        cells = [cell.strip() for cell in row]
        if any(cells):
            rows.append((reader.line_num, cells))
    if not rows:
        raise InputError(f"from_csv: {file} is empty.")
    return rows


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _looks_like_header(rows: list[tuple[int, list[str]]]) -> bool:
    first = rows[0][1]
    if len(rows) == 1:
        return not all(_is_number(cell) for cell in first)
    second = rows[1][1]
    return any(not _is_number(a) and _is_number(b) for a, b in zip(first, second))


def _target_index(target: str | int, columns: list[str] | None, width: int, file: Path) -> int:
    if isinstance(target, str):
        if columns is None:  # from_csv sets header=True for a named target; kept for direct callers
            raise InputError(f"from_csv: target={target!r} is a column name, but {file} has no header row.")
        if target in columns:
            return columns.index(target)
        raise InputError(
            f"from_csv: {file} has no column {target!r}. Columns: {', '.join(columns)}."
            f"{did_you_mean(target, columns)}"
        )
    index = int(target)
    if not -width <= index < width:
        raise InputError(
            f"from_csv: target={target} is outside the {width} columns of {file}; use 0..{width - 1}, "
            "or -1 for the last column."
        )
    return index % width


def _csv_features(rows: list[tuple[int, list[str]]], feature_at: list[int], file: Path,
                  labels: list[str]) -> np.ndarray:
    """The feature cells as float64; on a bad cell, an error naming its line and column."""
    try:  # fast path: numpy parses the strings in C
        x = np.array([[row[i] for i in feature_at] for _, row in rows], dtype=np.float64)
        if np.isfinite(x).all():
            return x
    except ValueError:
        pass
    x = np.empty((len(rows), len(feature_at)), dtype=np.float64)
    for r, (line, row) in enumerate(rows):
        for c, i in enumerate(feature_at):
            x[r, c] = _csv_number(row[i], file, line, labels[i])
    return x


def _csv_number(cell: str, file: Path, line: int, column: str) -> float:
    if cell == "":
        raise InputError(
            f"from_csv: {file} line {line}, column {column!r} is empty. Fill or drop rows with missing "
            "values before training."
        )
    try:
        value = float(cell)
    except ValueError:
        raise InputError(
            f"from_csv: {file} line {line}, column {column!r} holds {cell!r}, which is not a number. "
            "Feature columns must be numeric: encode text or categories as numbers (e.g. one-hot) first."
        ) from None
    if not math.isfinite(value):
        raise InputError(
            f"from_csv: {file} line {line}, column {column!r} holds {cell!r}. A network cannot learn from "
            "missing or infinite values: fill or drop those rows first."
        )
    return value


def _csv_target(
    cells: list[tuple[int, str]], file: Path, column: str, task: str | None
) -> tuple[np.ndarray, list[str]]:
    """The target column as int64 labels, float64 targets, or text labels mapped to 0..k-1 (with names)."""
    for line, cell in cells:
        if cell == "":
            raise InputError(f"from_csv: {file} line {line}, target column {column!r} is empty.")
    numeric = [_is_number(cell) for _, cell in cells]
    if all(numeric):
        try:
            return np.array([int(cell) for _, cell in cells], dtype=np.int64), []
        except ValueError:
            return np.array([float(cell) for _, cell in cells], dtype=np.float64), []
    if any(numeric):
        line, cell = cells[numeric.index(True)]
        text_line, text = cells[numeric.index(False)]
        raise InputError(
            f"from_csv: target column {column!r} of {file} mixes numbers ({cell!r} on line {line}) and text "
            f"({text!r} on line {text_line}). Fix the odd values (a missing-value marker?) so that the "
            "labels are all text or all numbers."
        )
    if task == "regression":
        raise InputError(
            f"from_csv: task='regression' needs numeric targets, but column {column!r} of {file} holds text "
            f"({cells[0][1]!r} on line {cells[0][0]})."
        )
    class_names = sorted({cell for _, cell in cells})
    index = {label: i for i, label in enumerate(class_names)}
    return np.array([index[cell] for _, cell in cells], dtype=np.int64), class_names


def from_npz(
    path: str | Path,
    *,
    x_key: str = "x",
    y_key: str = "y",
    name: str | None = None,
    task: Task | None = None,
    tokens: bool = False,
) -> Dataset:
    """Read arrays `x_key` and `y_key` from an .npz archive (as written by ``np.savez``).

    The file is opened with ``allow_pickle=False``: a pickle can run code when
    loaded, so trainlab never unpickles a file. Arrays are converted as in
    `from_arrays` (which `task` and `tokens` are passed to).

    Raises:
        InputError: a missing file, a file that is not an .npz archive, a
            missing key (the message lists the keys), or a pickled object array.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "data.npz")
        >>> np.savez(path, x=np.eye(3), y=np.array([0, 1, 1]))
        >>> from_npz(path)
        Dataset('data': 3 samples x 3 features, classification, 2 classes)
    """
    file = _existing_file(path, "from_npz")
    never = ("trainlab reads plain numeric arrays only and never unpickles a file, since loading a "
             "pickle can run arbitrary code")
    try:
        archive = np.load(file, allow_pickle=False)
    except ValueError as error:
        raise InputError(
            f"from_npz: {file} is not an .npz archive of arrays; it may be a pickle ({never}). "
            "Save the data with np.savez(path, x=x, y=y)."
        ) from error
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"from_npz: {file} could not be read as an .npz archive ({error}).") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(
            f"from_npz: {file} holds a single array (an .npy file), not an .npz archive with "
            f"'{x_key}' and '{y_key}'. Save both with np.savez(path, {x_key}=x, {y_key}=y)."
        )
    with archive:
        arrays = {}
        for key in (x_key, y_key):
            if key not in archive.files:
                raise InputError(
                    f"from_npz: {file} has no array '{key}'. "
                    f"Arrays in it: {', '.join(archive.files) or '(none)'}."
                    f"{did_you_mean(key, archive.files)} Choose them with x_key= and y_key=."
                )
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                raise InputError(
                    f"from_npz: array '{key}' in {file} is an object array, stored as a pickle; {never}. "
                    f"Save it as numbers, e.g. np.savez(path, {key}=np.asarray({key}, dtype=np.float32))."
                ) from error
    return _make(arrays[x_key], arrays[y_key], name=name if name is not None else file.stem,
                 task=task, num_classes=None, tokens=tokens)


def _existing_file(path: Any, caller: str) -> Path:
    if not isinstance(path, (str, Path)):
        raise InputTypeError(f"{caller}: path must be a str or Path, got {type(path).__name__} {path!r}")
    file = Path(path)
    if not file.is_file():
        what = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise InputError(f"{caller}: file '{file}' {what} (looked in {Path.cwd()} for relative paths).")
    return file


FILE_SETTINGS = {
    ".csv": ("target", "header", "name", "task"),
    ".npz": ("x_key", "y_key", "name", "task", "tokens"),
}


def as_dataset(obj: Any, *, source: str | None = None) -> Dataset:
    """The Dataset a user described, in any of the forms a spec or a caller may use.

    Accepted: a Dataset (returned as is); a registered name (``"iris"``); a
    path (str or Path) ending in .csv or .npz; a mapping with a ``name`` and
    settings (``{"name": "synthetic", "num_samples": 500}``) or with a ``path``
    and reader settings (``{"path": "data.csv", "target": "label"}``); a tuple
    ``(x, y)`` of arrays (see `from_arrays`).

    Args:
        obj: the description.
        source: where it came from (e.g. ``"--data"``), named in error messages.

    Example:
        >>> as_dataset({"name": "synthetic", "num_samples": 500}).x.shape
        torch.Size([500, 20])
        >>> as_dataset(([[0.0], [1.0]], [0, 1])).task
        'classification'
    """
    origin = f" (from {source})" if source else ""
    if isinstance(obj, Dataset):
        return obj
    if isinstance(obj, Path) or (isinstance(obj, str) and Path(obj).suffix):
        return _read_file(obj, {}, origin)
    if isinstance(obj, str):
        return _expect_dataset(DATASETS.build(obj, source=source))
    if isinstance(obj, Mapping):
        if "path" in obj:
            settings = {k: v for k, v in obj.items() if k != "path"}
            return _read_file(obj["path"], settings, origin)
        return _expect_dataset(DATASETS.build(obj, source=source))
    if isinstance(obj, tuple):
        if len(obj) != 2:
            raise InputError(f"a data set given as a tuple must be (x, y){origin}, got {len(obj)} items.")
        return from_arrays(obj[0], obj[1])
    raise InputTypeError(
        f"cannot make a data set from {type(obj).__name__}{origin}. Pass a data set name "
        f"({', '.join(DATASETS.names())}), a .csv or .npz path, a mapping such as "
        "{'name': 'synthetic', 'num_samples': 500}, a tuple (x, y), or a Dataset."
    )


def _read_file(path: Any, settings: Mapping[str, Any], origin: str) -> Dataset:
    if not isinstance(path, (str, Path)):
        raise InputTypeError(f"a data file path must be a string{origin}, got {type(path).__name__} {path!r}")
    suffix = Path(path).suffix.lower()
    if suffix not in FILE_SETTINGS:
        raise InputError(
            f"cannot read '{path}'{origin}: trainlab reads .csv and .npz files, or a bundled data set by "
            f"name ({', '.join(DATASETS.names())})."
        )
    allowed = FILE_SETTINGS[suffix]
    for key in settings:
        if key not in allowed:
            raise InputError(
                f"a {suffix} data file has no setting '{key}'{origin}. Settings: {', '.join(allowed)}."
                f"{did_you_mean(key, allowed)}"
            )
    if not Path(path).is_file():
        stem = Path(path).stem
        hint = (f" To use the bundled data set, write its name alone: '{stem}'." if stem in DATASETS
                else " Check the path.")
        raise InputError(
            f"data file '{path}'{origin} does not exist; relative paths start in {Path.cwd()}.{hint}"
        )
    reader = from_csv if suffix == ".csv" else from_npz
    return reader(path, **settings)
