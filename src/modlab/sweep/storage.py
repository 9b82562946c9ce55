"""Study storage: an RDB URL (SQLite file by default, PostgreSQL/MySQL for several machines), opened early.

Opening it before any trial starts turns a typo'd host, a missing driver or an unwritable path into one
clear line instead of a traceback after the first trial.
"""

from __future__ import annotations

import logging
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

from modlab.errors import ModlabError

log = logging.getLogger(__name__)

# A name that becomes one path component: no separator, no '..', not hidden or option-like, not empty, and
# short enough for any file system once '.db' is added.
_PATH_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")


def check_path_name(name: Any, key: str) -> str:
    """`name` as a string, or a ModlabError naming `key`: it becomes a directory or file name (sweep dir, database)."""
    text = "" if name is None else str(name)
    if not _PATH_NAME.fullmatch(text):
        raise ModlabError(
            f"{key}={text!r} becomes a directory or file name: use 1-128 letters, digits and '_' ('-' and '.' "
            f"after the first character), e.g. {key}=focal_v2"
        )
    return text


def default_url(log_dir: str | Path, study_name: str) -> str:
    """`sqlite:///<log_dir>/optuna/<study_name>.db`: one file per study, next to the runs it describes."""
    name = check_path_name(study_name, "hydra.sweeper.study_name")
    path = Path(log_dir).expanduser().resolve() / "optuna" / f"{name}.db"
    return f"sqlite:///{path}"


def masked(url: str) -> str:
    """The URL with any password replaced by ***, for logs, messages and result files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def has_password(url: str) -> bool:
    try:
        from sqlalchemy.engine import make_url

        return bool(make_url(url).password)
    except Exception:
        return False


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several workers (and the heartbeat thread) write to one SQLite file: wait for the lock, don't fail.
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def connect(url: str):
    """The storage of an existing study, from inside a job: no schema creation, no version check."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url), skip_table_creation=True,
                                          skip_compatibility_check=True)


def open_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 stale_callback=None):
    """An `optuna.storages.RDBStorage`, or a ModlabError that says why the URL cannot be used."""
    import optuna
    import sqlalchemy.exc

    if not isinstance(url, str) or "://" not in url:
        raise ModlabError(
            f"hydra.sweeper.storage={url!r} is not a database URL; use e.g. sqlite:///outputs/optuna/study.db "
            f"or postgresql://user@host/db"
        )
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        path = Path(url[len("sqlite:///"):])
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ModlabError(f"cannot create the directory for storage {masked(url)}: {err.strerror}") from None
    elif url.startswith("sqlite:///:memory:") or url == "sqlite://":
        raise ModlabError("an in-memory SQLite storage cannot be shared with trials or resumed; use a file URL")
    try:
        for attempt in range(6):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(
                        url, engine_kwargs=_engine_kwargs(url), heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period, heartbeat_stale_trial_callback=stale_callback,
                    )
            except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError
                    ) as err:
                # Workers started together race to create the schema ("table ... already exists"): the loser
                # finds it there on the next try.
                race = ("already exists", "locked", "duplicate", "unique constraint")  # last: alembic_version row
                if attempt == 5 or not any(s in str(err).lower() for s in race):
                    raise
                time.sleep(0.2 + random.random() * 0.5)
    except ImportError as err:
        missing = getattr(err, "name", None) or getattr(err.__cause__, "name", None)
        package = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary"}.get(missing, missing)
        raise ModlabError(
            f"storage {masked(url)} needs the database driver {missing or '(see the URL scheme)'!r}; "
            f"pip install {package or 'the driver'}"
        ) from None
    except sqlalchemy.exc.ArgumentError as err:
        raise ModlabError(f"storage {masked(url)} is not a valid database URL: {err}") from None
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ModlabError(f"cannot reach storage {masked(url)}: {reason}") from None
    except RuntimeError as err:  # optuna's schema-version check
        raise ModlabError(f"storage {masked(url)}: {str(err).splitlines()[0]}") from None
