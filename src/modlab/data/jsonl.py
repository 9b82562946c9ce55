"""Generic JSONL moderation data: one `{"id": ..., "text": ..., "labels": ...}` object per line.

`labels` comes in the two shapes users have:

- a dict of 0/1 per category: `{"threats": 0, "spam": 1, ...}`; `null` (or, with `missing_labels=unknown`, an
  absent category) is an unknown label, masked out of the loss and metrics;
- names under a target: `{"moderation": ["toxicity", "insult"]}` (or a bare list); categories not named are 0,
  and a `safe` entry (see `safe_labels`) means no label at all.

The taxonomy is `labels` from the config, or else inferred: every category seen, sorted. Text is kept as is,
context prefixes such as `[ADULT][MESSAGE]` included. `path` is a file, or a folder of `*.jsonl` files where a
file named train/validation/test gives that split; a `split` field on a line wins over the file name. Other
scalar fields on a line (e.g. `lang`, `kind`) are kept in `table.meta`.
"""

from __future__ import annotations

import difflib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from modlab.data import sources
from modlab.data.sources import SPLIT_ALIASES, Rows, fail
from modlab.data.table import LabeledTable
from modlab.errors import ModlabError
from modlab.io import atomic_write_text

log = logging.getLogger(__name__)

EXPECTS = 'a .jsonl file (or a folder of them) with one {"text": ..., "labels": ...} object per line'
MISSING_POLICIES = ("unknown", "negative")


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".jsonl", ".json"))
    if not files:
        raise fail(root, "no .jsonl files here", f"point dataset.path at {EXPECTS}")
    return [p for p, _ in sources.by_split(files)]


class _Parser:
    """One line's `labels` value -> ({category: 0/1/None}, listed), checking names and values as it goes.

    `listed` is True for the names shape, where every category not named is 0.
    """

    def __init__(
        self, taxonomy: list[str] | None, target: str | None, safe: set[str], labels_field: str
    ) -> None:
        self.taxonomy, self.target, self.safe, self.field = taxonomy, target, safe, labels_field
        self.known = set(taxonomy) if taxonomy is not None else None

    def _check_name(self, name, where: str) -> str:
        if not isinstance(name, str):
            raise fail(
                where, f"label {sources.short(name)} is not a category name", "write labels as strings"
            )
        if self.known is not None and name not in self.known and name not in self.safe:
            shown = ", ".join(self.taxonomy[:12]) + (", ..." if len(self.taxonomy) > 12 else "")
            raise fail(
                where,
                f"label {name!r} is not in the taxonomy ({shown})",
                "fix the label, or add it to dataset.reader.labels (null infers the taxonomy from the data)",
            )
        return name

    def _names(self, names, where: str) -> tuple[dict[str, int | None], bool]:
        if isinstance(names, str):
            names = [names]
        names = [self._check_name(n, where) for n in names]
        real = [n for n in names if n not in self.safe]
        if len(real) < len(names) and real:
            raise fail(
                where,
                f"{sorted(self.safe)[0]!r} is listed together with {real[0]!r}",
                "a safe item has no other label; remove one of them",
            )
        return dict.fromkeys(real, 1), True

    def __call__(self, value, where: str) -> tuple[dict[str, int | None], bool]:
        if isinstance(value, list | str):
            return self._names(value, where)
        if not isinstance(value, dict):
            raise fail(
                where,
                f"{self.field!r} is a {type(value).__name__}",
                'write a dict of 0/1 per category or {"<target>": [names]}',
            )
        # {"toxic": "1"} is a quoted number, not a target naming category "1": say so, not "several targets"
        quoted = [k for k, v in value.items() if isinstance(v, str) and v.strip().lstrip("-").replace(".", "", 1).isdigit()]
        if quoted:
            raise fail(
                where,
                f"label {quoted[0]!r} is the string {value[quoted[0]]!r}: values must be 0/1 numbers",
                f'write "{quoted[0]}": {value[quoted[0]].strip()} without quotes (or null for unknown)',
            )
        listed = [k for k, v in value.items() if isinstance(v, list | str)]
        if listed:
            if self.target is not None:
                if self.target not in value:
                    raise fail(
                        where,
                        f"target {self.target!r} is not in {self.field!r} (keys: {', '.join(value)})",
                        "fix dataset.reader.target or the line",
                    )
                return self._names(value[self.target], where)
            if len(value) == 1:
                return self._names(value[listed[0]], where)
            raise fail(
                where,
                f"{self.field!r} has several targets ({', '.join(value)})",
                f"choose one with dataset.reader.target={listed[0]}",
            )
        out: dict[str, int | None] = {}
        for name, flag in value.items():
            self._check_name(name, where)
            if flag is None:
                out[name] = None
            elif isinstance(flag, bool) or flag in (0, 1):
                out[name] = int(flag)
            else:
                raise fail(
                    where,
                    f"label {name!r} is {sources.short(flag)}, not 0 or 1",
                    "fix the value (0, 1, or null for unknown)",
                )
        safe_flags = [out.pop(name) for name in sorted(self.safe & set(out))]
        if 1 in safe_flags and 1 in out.values():
            raise fail(
                where, "marked safe and also positive for a category", "a safe item has no other label"
            )
        return out, False


def _check_inferred(taxonomy: list[str], targets, where: list[str]) -> None:
    """An inferred taxonomy takes every spelling as a category: "Toxic" next to "toxic" is a typo (an error
    naming its first line); a far rarer look-alike of another label ("insutl", 3 rows, next to "insult") is a
    loud warning, and so is a category on one row only, which cannot be learned or scored (its ROC/PR-AUC are
    NaN, as the README says)."""
    first: dict[str, int] = {}
    count: dict[str, int] = dict.fromkeys(taxonomy, 0)
    for i, (t, _) in enumerate(targets):
        for name in t:
            first.setdefault(name, i)
            count[name] += 1
    by_fold: dict[str, list[str]] = {}
    for name in taxonomy:
        by_fold.setdefault(name.casefold(), []).append(name)
    for names in by_fold.values():
        if len(names) > 1:
            rare = min(names, key=lambda n: (count[n], -first[n]))
            other = next(n for n in names if n != rare)
            raise fail(
                where[first[rare]],
                f"label {rare!r} differs from label {other!r} only by case (inferred taxonomy)",
                f"spell it {other!r}, or pin the categories with dataset.reader.labels=[...]",
            )
    for name in taxonomy:
        # a typo on a few rows ("insutl" next to "insult"): close in spelling, and far rarer than its look-alike
        near = [n for n in difflib.get_close_matches(name, [n for n in taxonomy if n != name], n=1, cutoff=0.8)
                if count[name] * 10 <= count[n]]
        if near:
            log.warning(
                "%s: label %r (%d rows) looks like a misspelling of %r (%d rows) and becomes a category of its "
                "own; fix the lines or pin dataset.reader.labels", where[first[name]], name, count[name], near[0],
                count[near[0]],
            )
        elif count[name] == 1:
            log.warning(
                "%s: label %r appears on this row only: it cannot be learned and its ROC/PR-AUC will be NaN; "
                "check its spelling or pin dataset.reader.labels", where[first[name]], name,
            )


def read(
    path,
    labels: list[str] | None = None,
    target: str | None = None,
    text_field: str = "text",
    labels_field: str = "labels",
    id_field: str = "id",
    split_field: str = "split",
    safe_labels: list[str] | None = ("safe",),
    missing_labels: str = "unknown",
    empty_text: str = "drop",
) -> LabeledTable:
    root = sources.require_path(path, "jsonl", EXPECTS)
    if missing_labels not in MISSING_POLICIES:
        raise ModlabError(
            f"dataset.reader.missing_labels={missing_labels!r}; use one of {', '.join(MISSING_POLICIES)}"
        )
    taxonomy = [str(x) for x in labels] if labels is not None else None
    if taxonomy is not None and (not taxonomy or len(set(taxonomy)) != len(taxonomy)):
        raise ModlabError(
            f"dataset.reader.labels={taxonomy} must list distinct category names (or be null to infer)"
        )
    parse = _Parser(taxonomy, target, set(safe_labels or ()), labels_field)
    reserved = {id_field, text_field, labels_field, split_field}

    ids, texts, targets, splits, metas, lines, files = [], [], [], [], [], [], []
    for file in _files(root):
        file_split = sources.split_of_name(file.name) or "train"
        for number, record in sources.read_jsonl(file):
            where = f"{file}: line {number}"
            if text_field not in record:
                keys = ", ".join(list(record)[:8])
                raise fail(
                    where,
                    f"no {text_field!r} field (keys: {keys})",
                    "add it, or set dataset.reader.text_field to the field holding the text",
                )
            text = record[text_field]
            if text is not None and not isinstance(text, str):
                raise fail(
                    where,
                    f"{text_field!r} is a {type(text).__name__}, not a string",
                    "write the text as a string",
                )
            if labels_field not in record:
                raise fail(
                    where,
                    f"no {labels_field!r} field",
                    "add the labels (a dict of 0/1 per category or "
                    '{"<target>": [names]}), or set dataset.reader.labels_field',
                )
            split = record.get(split_field) or file_split
            if split not in SPLIT_ALIASES:
                raise fail(
                    where, f"{split_field!r} is {sources.short(split)}", "use train, val (validation) or test"
                )
            ids.append(str(record[id_field]) if record.get(id_field) is not None else f"{file.name}:{number}")
            texts.append(text)
            targets.append(parse(record[labels_field], where))
            splits.append(SPLIT_ALIASES[split])
            metas.append(
                {
                    k: v
                    for k, v in record.items()
                    if k not in reserved and (v is None or isinstance(v, str | int | float | bool))
                }
            )
            lines.append(number)
            files.append(file)
    sources.ensure_rows(len(ids), root)

    if taxonomy is None:
        taxonomy = sorted({name for t, _ in targets for name in t})
        if not taxonomy:
            raise fail(
                root,
                "no line names any category, so no taxonomy can be inferred",
                "label some rows, or give the categories with dataset.reader.labels=[...]",
            )
        _check_inferred(taxonomy, targets, [f"{f}: line {n}" for f, n in zip(files, lines, strict=True)])
        log.info(
            "%s: inferred taxonomy of %d categories: %s (pin it with dataset.reader.labels)",
            root,
            len(taxonomy),
            ", ".join(taxonomy),
        )
    absent = -1.0 if missing_labels == "unknown" else 0.0
    y = np.full((len(ids), len(taxonomy)), absent, dtype=np.float32)
    column = {name: j for j, name in enumerate(taxonomy)}
    for i, (t, listed) in enumerate(targets):
        if listed:
            y[i] = 0.0
        for name, value in t.items():
            y[i, column[name]] = -1.0 if value is None else float(value)

    rows = _MultiFileRows(files, lines, ids)
    sources.check_unique_ids(ids, rows)
    keep = sources.clean_texts(texts, rows, text_field, empty_text, root)
    index = np.flatnonzero(keep)
    sources.ensure_rows(len(index), root, " after dropping empty texts")
    split = np.asarray(splits, dtype=object)[index].astype(str)
    meta = pd.DataFrame(metas).iloc[index].reset_index(drop=True) if any(metas) else None
    return LabeledTable(
        ids=[ids[i] for i in index],
        texts=[texts[i] for i in index],
        labels=y[index],
        label_names=taxonomy,
        split=None if (split == "train").all() else split,
        meta=meta,
        source=f"jsonl:{root}",
    )


class _MultiFileRows(Rows):
    def __init__(self, files: list[Path], lines: list[int], ids: list[str]) -> None:
        super().__init__(files[0] if files else Path("."), ids, lines)
        self.files = files

    def __call__(self, i: int, exact: bool = True) -> str:
        return f"{self.files[i]}: {super().describe(i)}"

    def describe(self, i: int, exact: bool = True) -> str:
        return f"{self.files[i].name} {super().describe(i)}"


def write(table: LabeledTable, path: str | Path, shape: str = "dict", target: str = "moderation") -> Path:
    """Write a table as JSONL in either label shape (unknown labels: null in `dict`, left out in `list`)."""
    if shape not in ("dict", "list"):
        raise ModlabError(f"shape={shape!r}; use dict or list")
    meta = table.meta.to_dict("records") if table.meta is not None else [{}] * len(table)
    lines = []
    for i, key in enumerate(table.ids):
        values = table.labels[i]
        if shape == "dict":
            labels = {
                n: (None if v < 0 else (int(v) if v in (0, 1) else float(v)))
                for n, v in zip(table.label_names, values, strict=True)
            }
        else:
            labels = {
                target: [n for n, v in zip(table.label_names, values, strict=True) if v >= 0.5] or ["safe"]
            }
        record = {"id": key, "text": table.texts[i], "labels": labels}
        if table.split is not None:
            record["split"] = str(table.split[i])
        record.update({k: _plain(v) for k, v in meta[i].items() if k not in record})
        lines.append(json.dumps(record, ensure_ascii=False))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def _plain(value):
    """A meta value as JSON: numpy scalars as Python ones, NaN as null."""
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and value != value else value
