"""Answer store: SQLite (WAL) by default, PostgreSQL by URL, one schema (SQLAlchemy Core).

Why each choice:
- every write is its own short transaction, committed before the caller moves on, so a
  crash loses at most the question on screen;
- SQLite transactions start with BEGIN IMMEDIATE (the write lock is taken up front, so
  two writers never deadlock on a lock upgrade) and WAL lets readers run meanwhile;
  writers wait their turn in a queue (study/writer_lock.py: FIFO between threads, a
  ticket queue of byte-range locks between processes) rather than in SQLite's busy
  polling, which starved single answers for seconds under 50 writers; reads
  (`Store.reading()`, plain `engine.connect()`) start a deferred, read-only transaction
  and wait for nobody, so write only through `Store.transaction()`; beyond one app
  process writing the file, use PostgreSQL (bench/bench_store_load.py);
  PostgreSQL serialises version assignment on the study's row (SELECT ... FOR UPDATE);
- one answer per (participant, item) is a unique constraint, and answers are inserted
  with ON CONFLICT DO NOTHING, so a double click or a replayed request is a no-op.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (Column, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint, create_engine, delete, event, func, insert, select, text, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from study.errors import StudyError
from study.writer_lock import TurnTimeout, forget_writer_lock, writer_lock

metadata = MetaData()

studies = Table(
    "studies", metadata,
    Column("study_id", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("starts", Integer, nullable=False, default=0),   # bumped under lock; serialises starts
)

participants = Table(
    "participants", metadata,
    Column("participant_id", String(64), primary_key=True),
    Column("study_id", String(64), ForeignKey("studies.study_id"), nullable=False),
    Column("token", String(128), nullable=False),
    Column("platform", String(16), nullable=False),          # local | prolific | mturk | import
    Column("worker_id", String(128), nullable=False, default=""),
    Column("platform_study_id", String(128), nullable=False, default=""),
    Column("platform_session_id", String(128), nullable=False, default=""),
    Column("version", Integer),                             # null until started
    Column("status", String(16), nullable=False),            # invited | active | finished | screened_out
    Column("created_at", String(32), nullable=False),
    Column("started_at", String(32)),
    Column("finished_at", String(32)),
    Column("completion_code", String(64)),
    Column("attention_failures", Integer, nullable=False, default=0),
    Column("attention_passed", Integer),                    # 1 / 0 once finished, null before
    Column("flags", Text, nullable=False, default=""),       # e.g. duplicate_worker
    UniqueConstraint("study_id", "token", name="uq_participant_token"),
)
Index("ix_participants_worker", participants.c.study_id, participants.c.platform, participants.c.worker_id)

answers = Table(
    "answers", metadata,
    Column("answer_id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(64), nullable=False),
    Column("participant_id", String(64), ForeignKey("participants.participant_id"), nullable=False),
    Column("item_id", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("answer", String(32), nullable=False),
    Column("response_ms", Integer),
    Column("answered_at", String(32), nullable=False),
    UniqueConstraint("participant_id", "item_id", name="uq_answer_once"),
)
Index("ix_answers_study", answers.c.study_id)

# one row per "I do not agree" on the consent page: no participant, no answers, no platform id
refusals = Table(
    "refusals", metadata,
    Column("refusal_id", Integer, primary_key=True, autoincrement=True),
    Column("study_id", String(64), nullable=False),
    Column("platform", String(16), nullable=False),          # local | prolific | mturk
    Column("refused_at", String(32), nullable=False),
    Column("refusal_key", String(64)),        # set by importers (keyed hash of the assignment): once only
    UniqueConstraint("study_id", "refusal_key", name="uq_refusal_once"),
)


def utcnow() -> str:
    """ISO 8601 UTC with milliseconds (sorts as text, same on every database)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_minus(now: str, minutes: int) -> str:
    t = dt.datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ") - dt.timedelta(minutes=minutes)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def default_url(study_dir: str | Path) -> str:
    return f"sqlite:///{Path(study_dir).resolve() / 'answers.sqlite'}"


def resolve_url(db: str | None, study_dir: str | Path | None = None) -> str:
    """`--db` value -> SQLAlchemy URL: None = the study's SQLite file, a path = SQLite there,
    `postgresql://...` gets the psycopg (v3) driver."""
    if db is None:
        if study_dir is None:
            raise StudyError("no answer store given (pass --db URL)")
        return default_url(study_dir)
    if "://" not in db:
        return f"sqlite:///{Path(db).resolve()}"
    if db.startswith("postgresql://") or db.startswith("postgres://"):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    return db


class Store:
    """A connection pool on one database; all methods are safe to call from many threads."""

    def __init__(self, url: str, *, queue_writers: bool = True):
        """`queue_writers=False` leaves SQLite writers to SQLite's busy polling (the old way;
        bench/bench_store_load.py compares both)."""
        self.url = url
        self._writer = None
        self._wal_path = None
        try:
            if url.startswith("sqlite"):
                self.engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
                database = self.engine.url.database
                self._writer = writer_lock(database or None) if queue_writers else None
                if self._writer is not None and database and database != ":memory:":
                    self._wal_path = str(Path(database).resolve()) + "-wal"
                _sqlite_setup(self.engine, self._writer)
            elif url.startswith("postgresql"):
                self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
            else:
                raise StudyError(f"answer store: only SQLite and PostgreSQL are supported (got {url.split(':')[0]!r})")
            with self.transaction() as conn:
                if self.dialect == "postgresql":   # several processes may create the schema at once
                    conn.execute(text("SELECT pg_advisory_xact_lock(72700151)"))
                metadata.create_all(conn)
        except ArgumentError:
            raise StudyError(f"answer store: cannot parse database URL {url!r}") from None
        except (OperationalError, SQLAlchemyError) as exc:
            raise StudyError(f"answer store {self.safe_url}: cannot open ({str(exc).splitlines()[0]})") from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True) if hasattr(self, "engine") else self.url

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self):
        """One transaction: committed on success, rolled back on any error (on SQLite, after
        waiting for this store's writer turn)."""
        if self._writer is None:
            with self.engine.begin() as conn:
                yield conn
            return
        try:
            self._writer.acquire()
        except TurnTimeout as exc:
            raise StudyError(f"answer store {self.safe_url}: busy ({exc}); for more simultaneous "
                             f"participants use PostgreSQL (--db postgresql://...)") from None
        try:
            with self.engine.begin() as conn:
                yield conn
        finally:
            self._writer.release()
        if not self._writer.holds_turn():
            self._sync_wal()

    def _sync_wal(self) -> None:
        """Make the commit durable before the caller goes on (group commit).

        SQLite runs with synchronous=NORMAL here: a commit reaches the operating system
        (so it survives the app being killed) but the write-ahead log is not fsync'ed
        inside the writer's turn. This fsync, after the turn is handed on, gives the
        durability of synchronous=FULL against power loss, while the next writer already
        works, and concurrent fsyncs of one file are coalesced by the kernel. (The WAL is
        append-only, and SQLite syncs it before every checkpoint.)"""
        if self._wal_path is None:
            return
        try:
            fd = os.open(self._wal_path, os.O_RDONLY)
        except FileNotFoundError:      # no WAL: everything is in the database file, synced at checkpoint
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)               # never the database file itself (that would drop SQLite's locks)

    @contextmanager
    def reading(self):
        """A read-only transaction: on SQLite it waits for no writer (WAL snapshot), so
        the questions' reads do not queue behind answers. Never write in it."""
        with self.engine.begin() as conn:
            yield conn

    # --- studies -------------------------------------------------------------------
    def register_study(self, study_id: str, fingerprint: str) -> None:
        """Record which build of the study this store serves; refuse a different build."""
        with self.transaction() as conn:
            row = conn.execute(select(studies.c.fingerprint).where(studies.c.study_id == study_id)).first()
            if row is None:
                self._insert_ignore(conn, studies, {"study_id": study_id, "fingerprint": fingerprint, "starts": 0},
                                    ["study_id"])
                row = conn.execute(select(studies.c.fingerprint).where(studies.c.study_id == study_id)).first()
            if row.fingerprint != fingerprint:
                raise StudyError(f"answer store {self.safe_url}: holds answers of another build of study "
                                 f"{study_id!r} (fingerprint {row.fingerprint}, this folder {fingerprint})")

    def lock_study(self, conn: Connection, study_id: str) -> None:
        """Serialise participant starts of one study: the UPDATE holds the study's row lock
        on PostgreSQL until commit (later statements of this READ COMMITTED transaction
        see every start committed before); SQLite's BEGIN IMMEDIATE holds the write lock."""
        conn.execute(update(studies).where(studies.c.study_id == study_id).values(starts=studies.c.starts + 1))

    # --- participants --------------------------------------------------------------
    def participant(self, conn: Connection, study_id: str, *, participant_id=None, token=None,
                    platform=None, worker_id=None, for_update: bool = False):
        """One participant row (the first created if several match); `for_update` locks it
        on PostgreSQL so one participant's writes run one after another."""
        q = select(participants).where(participants.c.study_id == study_id)
        if for_update:
            q = q.with_for_update()
        if participant_id is not None:
            q = q.where(participants.c.participant_id == participant_id)
        if token is not None:
            q = q.where(participants.c.token == token)
        if worker_id is not None:
            q = q.where(participants.c.platform == platform, participants.c.worker_id == worker_id)
        return conn.execute(q.order_by(participants.c.created_at)).first()

    def version_counts(self, conn: Connection, study_id: str, n_versions: int, recent_since: str) -> list[int]:
        """Per version: finished participants plus unfinished ones started since `recent_since`."""
        q = (select(participants.c.version, func.count())
             .where(participants.c.study_id == study_id, participants.c.version.is_not(None))
             .where((participants.c.status == "finished")
                    | ((participants.c.status == "active") & (participants.c.started_at >= recent_since)))
             .group_by(participants.c.version))
        counts = [0] * n_versions
        for version, n in conn.execute(q):
            if 0 <= version < n_versions:
                counts[version] = n
        return counts

    def _insert_ignore(self, conn: Connection, table: Table, values: dict, keys: list[str]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; returns 1 if a row was inserted, 0 if it existed."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = (dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=keys)
                .returning(*table.primary_key.columns))
        return 1 if conn.execute(stmt).first() is not None else 0

    def insert_answer(self, conn: Connection, values: dict) -> bool:
        return self._insert_ignore(conn, answers, values, ["participant_id", "item_id"]) == 1

    def insert_answers(self, conn: Connection, rows: list[dict]) -> None:
        """Many answers in one statement (importers); an answer already stored is left as it is."""
        if rows:
            dialect = postgresql if self.dialect == "postgresql" else sqlite
            conn.execute(dialect.insert(answers).on_conflict_do_nothing(index_elements=["participant_id", "item_id"]),
                         rows)

    def answers_of(self, conn: Connection, participant_id: str) -> dict[str, dict]:
        rows = conn.execute(select(answers).where(answers.c.participant_id == participant_id))
        return {r.item_id: r._asdict() for r in rows}

    def export_rows(self, study_id: str) -> list[dict]:
        """Every answer of the study joined with its participant, in a stable order."""
        q = (select(answers.c.participant_id, answers.c.item_id, answers.c.position, answers.c.answer,
                    answers.c.response_ms, answers.c.answered_at, participants.c.platform,
                    participants.c.worker_id, participants.c.version, participants.c.status)
             .join(participants, participants.c.participant_id == answers.c.participant_id)
             .where(answers.c.study_id == study_id)
             .order_by(participants.c.created_at, participants.c.participant_id, answers.c.position))
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(q)]

    def participants_of(self, study_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            q = (select(participants).where(participants.c.study_id == study_id)
                 .order_by(participants.c.created_at, participants.c.participant_id))
            return [r._asdict() for r in conn.execute(q)]

    # --- participant writes of the session and the importers (no other module writes SQL) ---
    def insert_participant(self, conn: Connection, values: dict) -> bool:
        """A new participant row; False (and nothing changed) if its participant_id exists."""
        return self._insert_ignore(conn, participants, values, ["participant_id"]) == 1

    def update_participant(self, conn: Connection, participant_id: str, **values) -> None:
        conn.execute(update(participants).where(participants.c.participant_id == participant_id).values(**values))

    def delete_unanswered_participant(self, conn: Connection, participant_id: str) -> bool:
        """Remove a participant who has no answer (consent withdrawn before the first question)."""
        if conn.execute(select(answers.c.answer_id).where(answers.c.participant_id == participant_id)).first():
            return False
        return conn.execute(delete(participants).where(participants.c.participant_id == participant_id)).rowcount == 1

    def participants_of_worker(self, conn: Connection, study_id: str, platform: str, worker_id: str) -> list:
        q = (select(participants).where(participants.c.study_id == study_id, participants.c.platform == platform,
                                        participants.c.worker_id == worker_id)
             .order_by(participants.c.created_at, participants.c.participant_id))
        return conn.execute(q).fetchall()

    def insert_refusal(self, conn: Connection, study_id: str, platform: str, refused_at: str,
                       refusal_key: str | None = None) -> bool:
        """One refusal; with a `refusal_key` at most once per key (False: already recorded)."""
        values = dict(study_id=study_id, platform=platform, refused_at=refused_at, refusal_key=refusal_key)
        if refusal_key is None:
            conn.execute(insert(refusals).values(**values))
            return True
        return self._insert_ignore(conn, refusals, values, ["study_id", "refusal_key"]) == 1

    def refusal_counts(self, study_id: str) -> dict[str, int]:
        """Consent refusals per platform."""
        q = (select(refusals.c.platform, func.count()).where(refusals.c.study_id == study_id)
             .group_by(refusals.c.platform))
        with self.engine.connect() as conn:
            return {platform: n for platform, n in conn.execute(q)}


def _sqlite_setup(engine: Engine, writer) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None          # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # a committed answer survives a crash: FULL syncs the WAL at every commit; with the
        # writer queue, NORMAL + Store._sync_wal after the turn (group commit)
        cur.execute("PRAGMA synchronous=FULL" if writer is None else "PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):   # a writer's turn (Store.transaction) takes the write lock up front
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer is None or writer.holds_turn() else "BEGIN")


def open_store(db: str | None = None, study_dir: str | Path | None = None) -> Store:
    """The store for `--db` (URL or SQLite path), defaulting to `STUDY/answers.sqlite`."""
    return Store(resolve_url(db, study_dir))


def sqlite_file(url: str) -> Path | None:
    """The SQLite file of a store URL (None: PostgreSQL or in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    database = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(database).resolve() if database and database != ":memory:" else None


SQLITE_SIDECARS = ("-wal", "-shm", "-journal", ".writer-lock")


@contextmanager
def command_store(db: str | None = None, study_dir: str | Path | None = None):
    """`open_store` for a one-shot command that leaves nothing behind when it fails: if
    this call created the SQLite file and the command raises, the file and its sidecars
    (-wal, -shm, .writer-lock) are removed once closed (the failed transaction stored
    nothing; a file that meanwhile holds rows written by someone else is kept)."""
    url = resolve_url(db, study_dir)
    path = sqlite_file(url)
    created = path is not None and not path.exists()
    try:
        store = Store(url)
    except BaseException:
        if created:
            _remove_new_sqlite(path)
        raise
    try:
        yield store
    except BaseException:
        store.close()
        if created:
            _remove_new_sqlite(path)
        raise
    store.close()


def _remove_new_sqlite(path: Path) -> None:
    import sqlite3

    if path.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
                held = sum(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                           for table in ("participants", "answers", "refusals"))
        except sqlite3.Error:
            held = 0          # not even a schema: nothing of anybody's is in it
        if held:
            return
    forget_writer_lock(str(path))
    for name in (str(path), *(str(path) + s for s in SQLITE_SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


# -- PostgreSQL server administration for `python -m app serve` (the store stays the only
#    module that speaks to a database: app/pgserver.py starts the server, these talk to it)

def shown_url(url: str) -> str:
    """A database URL as it may be printed: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def postgres_answers(url: str, timeout_s: int = 2) -> str | None:
    """None when the PostgreSQL server at `url` accepts a connection, else the driver's
    first error line."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, connect_timeout=timeout_s):
            return None
    except psycopg.Error as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def create_postgres_database(admin_url: str, name: str) -> None:
    """CREATE DATABASE `name` on the server at `admin_url` unless it exists."""
    import psycopg

    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
