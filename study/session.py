"""The participant flow, independent of any web framework (the Streamlit app stays thin).

    runner = StudyRunner.open("studies/ID")            # or db="postgresql://..."
    p = runner.start(token=...)                        # or **parse_link(query).start_kwargs()
    while (item := runner.next_item(p.participant_id)) is not None:
        ...show item.question, item.media, runner.options...
        runner.record_answer(p.participant_id, item.item_id, "3", response_ms=1840)
    done = runner.finish(p.participant_id)             # .code, .status, .redirect_url

The consent page comes first and stores nothing: `find` looks a link up without creating a
participant, `start` is called on "I agree", and `decline` ("I do not agree") removes a
participant who has not answered yet and records only a refusal (no id, no answers).

Each call is one short transaction. An answer is committed before `record_answer`
returns, so the next question is only shown once the previous answer is safe; a reload
or a second visit with the same link resumes at the first unanswered item; replaying an
answer (double click, resent request) changes nothing.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from study.errors import StudyError
from study.folder import StudyFolder, open_study
from study.kinds import ATTENTION, kind_of
from study.platforms.registry import platform_of
from study.store import Store, iso_minus, open_store, utcnow
from study.wording import COMMON


@dataclass(frozen=True)
class Participant:
    participant_id: str
    token: str
    version: int | None
    status: str            # invited | active | finished | screened_out
    platform: str
    worker_id: str

    @classmethod
    def from_row(cls, row) -> Participant:
        return cls(row.participant_id, row.token, row.version, row.status, row.platform, row.worker_id)


@dataclass(frozen=True)
class ItemView:
    """What the app shows for one question (nothing here reveals a method)."""
    item_id: str
    position: int          # 0-based
    total: int
    question: str
    media: list[Path]      # absolute paths of the PNGs, in display order
    captions: list[str]    # neutral captions, one per image


@dataclass(frozen=True)
class AnswerResult:
    stored: bool           # False: this item was already answered (replay), nothing changed
    screened_out: bool     # attention checks failed beyond the allowed number
    remaining: int


@dataclass(frozen=True)
class Completion:
    status: str            # finished | screened_out | no_consent
    code: str
    message: str
    redirect_url: str | None   # the platform's completion URL (None: show the code only)


def _captions(study: StudyFolder, item: dict) -> list[str]:
    return kind_of(study.kind).captions(study.options, len(item["media"]))


def item_view(study: StudyFolder, version: int, position: int) -> ItemView:
    """What a participant of `version` sees at `position` (no store involved)."""
    seq = study.versions[version]
    item_id = seq[position]
    item = study.items[item_id]
    return ItemView(item_id=item_id, position=position, total=len(seq), question=item["question"],
                    media=[study.media_path(m).resolve() for m in item["media"]],
                    captions=_captions(study, item))


def preview(study: StudyFolder, version: int, count: int) -> list[ItemView]:
    """The first `count` questions of a version exactly as participants get them; stores nothing."""
    return [item_view(study, version, position) for position in range(min(count, len(study.versions[version])))]


class StudyRunner:
    """One study folder + one answer store."""

    def __init__(self, study: StudyFolder, store: Store):
        self.study = study
        self.store = store
        self.key = study.key
        store.register_study(study.id, study.fingerprint)

    @classmethod
    def open(cls, study_dir: str | Path, db: str | None = None) -> StudyRunner:
        """`db`: None (STUDY/answers.sqlite), a SQLite path, or a SQLAlchemy/PostgreSQL URL."""
        study = open_study(study_dir)
        return cls(study, open_store(db, study.root))

    # --- public properties the app reads --------------------------------------------
    @property
    def wording(self) -> dict:
        return self.study.wording

    @property
    def options(self) -> list[dict]:
        return self.study.options

    # --- participants -----------------------------------------------------------------
    def invite(self, n: int) -> list[str]:
        """Create `n` personal tokens (one link each); versions are assigned at first visit."""
        tokens = []
        with self.store.transaction() as conn:
            for _ in range(n):
                token = secrets.token_urlsafe(12)
                self.store.insert_participant(conn, dict(
                    participant_id=secrets.token_hex(8), study_id=self.study.id, token=token, platform="local",
                    worker_id="", platform_study_id="", platform_session_id="", status="invited",
                    created_at=utcnow(), attention_failures=0, flags=""))
                tokens.append(token)
        return tokens

    def start(self, *, token: str | None = None, platform: str = "local", worker_id: str = "",
              platform_study_id: str = "", platform_session_id: str = "") -> Participant:
        """Start or resume a participant.

        - `token` of an invitation or an earlier visit: resume (or start) that participant;
          an unknown token is an error.
        - a platform that resumes by worker id (study.platforms.registry, e.g. Prolific's
          PROLIFIC_PID): the same worker id resumes.
        - neither: a new participant (open link); keep its `token` in the URL to resume.
        """
        now = utcnow()
        study = self.study
        with self.store.transaction() as conn:
            self.store.lock_study(conn, study.id)
            row = self._existing(conn, token, platform, worker_id)
            if row is not None and row.status != "invited":
                return Participant.from_row(row)
            counts = self.store.version_counts(conn, study.id, len(study.versions),
                                               iso_minus(now, study.manifest["recent_start_minutes"]))
            version = min(range(len(counts)), key=lambda v: (counts[v], v))
            values = dict(version=version, status="active", started_at=now)
            if row is not None:
                self.store.update_participant(conn, row.participant_id, **values)
                pid = row.participant_id
            else:
                pid = secrets.token_hex(8)
                self.store.insert_participant(conn, dict(
                    participant_id=pid, study_id=study.id, token=secrets.token_urlsafe(12),
                    platform=platform, worker_id=worker_id, platform_study_id=platform_study_id,
                    platform_session_id=platform_session_id, created_at=now, attention_failures=0, flags="",
                    **values))
            return Participant.from_row(self.store.participant(conn, study.id, participant_id=pid))

    def _row(self, conn, participant_id: str, lock: bool = False):
        row = self.store.participant(conn, self.study.id, participant_id=participant_id, for_update=lock)
        if row is None:
            raise StudyError(f"study {self.study.id}: unknown participant {participant_id!r}")
        if row.version is None:
            raise StudyError(f"study {self.study.id}: participant {participant_id!r} has not started")
        return row

    def participant(self, participant_id: str) -> Participant:
        with self.store.reading() as conn:
            return Participant.from_row(self._row(conn, participant_id))

    def progress(self, participant_id: str) -> tuple[int, int]:
        """(answered, total) for a progress bar."""
        with self.store.reading() as conn:
            row = self._row(conn, participant_id)
            return len(self.store.answers_of(conn, participant_id)), len(self.study.versions[row.version])

    def next_item(self, participant_id: str) -> ItemView | None:
        """The first unanswered item of the participant's version; None when done or screened out."""
        with self.store.reading() as conn:
            row = self._row(conn, participant_id)
            if row.status in ("finished", "screened_out"):
                return None
            done = self.store.answers_of(conn, participant_id)
        seq = self.study.versions[row.version]
        for position, item_id in enumerate(seq):
            if item_id not in done:
                return item_view(self.study, row.version, position)
        return None

    def record_answer(self, participant_id: str, item_id: str, answer: str,
                      response_ms: int | None = None) -> AnswerResult:
        """Store one answer (committed on return). Replays are no-ops; answering ahead of
        the first unanswered item, an item of another version or an invalid value is an error."""
        answer = str(answer)
        if answer not in self.study.option_values:
            raise StudyError(f"study {self.study.id}: answer {answer!r} is not one of {self.study.option_values}")
        if response_ms is not None and (isinstance(response_ms, bool) or not isinstance(response_ms, int)
                                        or response_ms < 0):
            raise StudyError(f"study {self.study.id}: response_ms must be a non-negative integer (got {response_ms!r})")
        # a replay (double click, reload) of a stored answer needs no writer's turn: answers are
        # never changed or removed, so one this read sees is committed for good
        with self.store.reading() as conn:
            row = self._row(conn, participant_id)
            seq = self.study.versions[row.version]
            done = self.store.answers_of(conn, participant_id) if item_id in seq else {}
            if item_id in done:
                return AnswerResult(False, row.status == "screened_out", len(seq) - len(done))
        with self.store.transaction() as conn:
            row = self._row(conn, participant_id, lock=True)
            seq = self.study.versions[row.version]
            if item_id not in seq:
                raise StudyError(f"study {self.study.id}: item {item_id!r} is not in version {row.version}")
            done = self.store.answers_of(conn, participant_id)
            remaining = len(seq) - len(done)
            if item_id in done:
                return AnswerResult(False, row.status == "screened_out", remaining)
            if row.status != "active":
                raise StudyError(f"study {self.study.id}: participant {participant_id!r} is already {row.status}")
            expected_next = next(i for i in seq if i not in done)
            if item_id != expected_next:
                raise StudyError(f"study {self.study.id}: item {item_id!r} answered out of order "
                                 f"(next is position {seq.index(expected_next)})")
            stored = self.store.insert_answer(conn, dict(
                study_id=self.study.id, participant_id=participant_id, item_id=item_id,
                position=seq.index(item_id), answer=answer, response_ms=response_ms, answered_at=utcnow()))
            screened = False
            info = self.key.get(item_id, {})
            if stored and info.get("kind") == ATTENTION and answer != info.get("expected"):
                failures = row.attention_failures + 1
                values = {"attention_failures": failures}
                if failures > self.study.manifest["attention"]["max_failures"]:
                    screened = True
                    values.update(status="screened_out", finished_at=utcnow(), attention_passed=0,
                                  completion_code=self.study.manifest["codes"]["screen_out"])
                self.store.update_participant(conn, participant_id, **values)
            return AnswerResult(stored, screened, remaining - (1 if stored else 0))

    def finish(self, participant_id: str) -> Completion:
        """Close a participant who answered everything (idempotent) and give the code."""
        codes = self.study.manifest["codes"]
        with self.store.transaction() as conn:
            row = self._row(conn, participant_id, lock=True)
            if row.status == "active":
                seq = self.study.versions[row.version]
                missing = len(seq) - len(self.store.answers_of(conn, participant_id))
                if missing:
                    raise StudyError(f"study {self.study.id}: participant {participant_id!r} has {missing} unanswered items")
                self.store.update_participant(conn, participant_id, status="finished", finished_at=utcnow(),
                                              completion_code=codes["completion"], attention_passed=1)
                status = "finished"
            elif row.status in ("finished", "screened_out"):
                status = row.status
            else:
                raise StudyError(f"study {self.study.id}: participant {participant_id!r} has not started")
        code = codes["completion"] if status == "finished" else codes["screen_out"]
        message = self.wording["completion_message" if status == "finished" else "screen_out_message"]
        redirect = platform_of(row.platform).completion_url(code)
        return Completion(status, code, message, redirect)

    # --- consent ----------------------------------------------------------------------
    def _existing(self, conn, token: str | None, platform: str, worker_id: str):
        if token:
            row = self.store.participant(conn, self.study.id, token=token)
            if row is None:
                raise StudyError(f"study {self.study.id}: unknown link token (ask the researcher for a new link)")
            return row
        if worker_id and platform_of(platform).resumes_by_worker_id:
            return self.store.participant(conn, self.study.id, platform=platform, worker_id=worker_id)
        return None

    def find(self, *, token: str | None = None, platform: str = "local", worker_id: str = "",
             platform_study_id: str = "", platform_session_id: str = "") -> Participant | None:
        """The participant a link already belongs to (None: nobody yet); creates nothing.
        Takes the same arguments as `start`; an unknown token is an error. A read: on SQLite it
        takes no writer's turn (every page view of both participant pages calls it)."""
        with self.store.reading() as conn:
            row = self._existing(conn, token, platform, worker_id)
            return None if row is None else Participant.from_row(row)

    def decline(self, *, token: str | None = None, platform: str = "local", worker_id: str = "",
                platform_study_id: str = "", platform_session_id: str = "") -> Completion:
        """"I do not agree": store one refusal and nothing else. A participant of this link who
        started but has not answered is removed (an invitation stays usable); one who has
        answered already cannot decline here (their answers stay until the researcher acts)."""
        with self.store.transaction() as conn:
            row = self._existing(conn, token, platform, worker_id)
            if row is not None and row.status != "invited":
                if row.status != "active" or not self.store.delete_unanswered_participant(conn, row.participant_id):
                    raise StudyError(f"study {self.study.id}: this link has answers already; "
                                     "ask the researcher to withdraw them")
            self.store.insert_refusal(conn, self.study.id, platform, utcnow())
        message = self.wording.get("no_consent_message", COMMON["no_consent_message"])
        code, text, redirect = platform_of(platform).decline(
            message, self.study.manifest["codes"].get("no_consent") or "")
        return Completion("no_consent", code, text, redirect)
