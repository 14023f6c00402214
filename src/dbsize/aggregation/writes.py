"""Which statements write one period type: a pure plan, no I/O.

The engine writes a period type in one transaction as an ordered tuple of typed writes (kind x
level + parameters); :func:`plan_window` plans an as-of or range scope, :func:`plan_targets` an
incremental one from its :class:`Targets`. ``AggregationRepository.execute`` runs each write,
and nothing else chooses a statement. The choice for the incremental scope, first match wins,
per level (database first, then instance):

- no target: nothing;
- no target reads samples (a night without new samples): ``complete_ended`` if a period ended;
- daily, every reading target reads the same day (``Targets.single_day_read``): ``window`` over
  that day and the one before; at the instance level, when nothing of that day is stored,
  ``opening`` instead (the day's totals, their change against the stored day before);
- a week, month or quarter with nothing stored that reads one day (``Targets.opening_day``):
  ``opening``;
- every target merged, reading one day, none following another (``Targets.appends``):
  ``appends``; when they all read the same day, that day's samples of the reading instances
  (``read``, ``instance_ids``), not joined with the targets;
- anything else: ``targets``, the general statement, with the shape the targets need.

The three one-day writes are followed by ``complete_ended`` when the period of some target that
reads nothing has ended (they write only the targets that read); the database appends also when
a reading target's has (its databases without a sample that day keep their rows).

Decision 0001 says why each shortcut is sound; decision 0004 what each one saves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from dbsize import periods
from dbsize.aggregation.plan import WindowPlan
from dbsize.aggregation.schemas import DateWindow, Level, PeriodType

# Reads within a week (first to last day at most 7 days) are done with one range scan
# (Targets.narrow).
NARROW_DAYS = 7


@dataclass(frozen=True)
class Targets:
    """An incremental run's (instance, period) targets for one period type."""

    period_type: PeriodType
    count: int
    window: DateWindow | None
    """First period_start to last period_end of the targets; None when there are none."""
    arrays: dict[str, list[Any]]
    """Parallel arrays (``sql.TARGET_ARRAYS``), bound as parameters."""
    read: DateWindow | None = None
    """First to last day that some target reads samples of; None when none reads any."""
    one_day: bool = False
    """Every target reads the samples of a single day."""
    unstored: bool = False
    """No target has stored rows (a night's new day, week, month or quarter): its rows are
    INSERTed, without the MERGE's join with its target and per-row WHEN."""
    reads_unstored: bool = False
    """No target that reads samples has stored rows (the others may only become complete)."""

    @property
    def narrow(self) -> bool:
        """The reads lie within a few days: read them with one range scan, not per target.
        A week of a fleet's days costs about what a thousand targets' index scans do."""
        return self.read is not None and (self.read.end - self.read.start).days < NARROW_DAYS

    def shape(self, *, database: bool) -> dict[str, bool]:
        """Which parts the target statements need (the flags of ``sql.database_targets``
        or, without ``database``, ``instance_targets``): the self-join for targets whose
        previous period is a target too, the sort for targets that are (re)read whole (new
        rows), the range scan for narrow reads, and at the database level the stored rows for
        merged targets and the grouping of reads longer than a day. On the usual night (one
        new day) most of them are left out."""
        shape = {
            "prev_targets": any(self.arrays.get("t_prev_target", ())),
            "inserts": not all(self.arrays.get("t_merge", ())),
            "narrow": self.narrow,
        }
        if database:
            shape |= {"merges": self.merges, "one_day": self.one_day}
        return shape

    @property
    def merges(self) -> bool:
        """Some target combines its stored rows with new samples (or only flips is_complete)."""
        return any(self.arrays.get("t_merge", ()))

    @property
    def appends(self) -> bool:
        """Every target is merged and reads at most one day, and none follows another (the
        usual night's current week, month and quarter): each database's sample is appended to
        its stored row (``sql.database_appends``)."""
        return (
            self.one_day
            and self.narrow
            and all(self.arrays.get("t_merge", ()))
            and not any(self.arrays.get("t_prev_target", ()))
        )

    def ended(self, today: date, *, reading: bool | None = None) -> bool:
        """Some target's period has ended (its rows are, or become, complete); with
        ``reading``, some target's that reads samples (True) or reads none (False: only its
        ``is_complete`` can change). Each distinct period once: a night's 1,000 targets of a
        month share one start (4.5 ms -> 0.03 ms)."""
        if self.window is None or self.window.start >= today:
            return False
        starts = self.arrays.get("t_start", ())
        if reading is not None:
            arrays = self.arrays
            targets = zip(starts, arrays["t_read_from"], arrays["t_read_to"], strict=True)
            starts = [start for start, first, last in targets if (first <= last) is reading]
        return any(periods.period_end(self.period_type, start) < today for start in set(starts))

    @property
    def single_day(self) -> date | None:
        """When every target that reads samples reads the same single day, and every other
        target is a period that has ended and starts no later than that day's (only its
        ``is_complete`` can change: it follows no target that reads): that day. The usual night,
        and the night after a same-day run, whose day, week, month or quarter has ended since."""
        if self.read is None or self.read.start != self.read.end:
            return None
        day = self.read.start
        start = periods.period_start(self.period_type, day)
        arrays = self.arrays
        targets = zip(arrays["t_start"], arrays["t_read_from"], arrays["t_read_to"], strict=True)
        if any(t_start > start for t_start, first, last in targets if first > last):
            return None
        return day

    @property
    def reading_instances(self) -> list[int]:
        """Instances of the targets that read samples."""
        targets = zip(
            self.arrays["t_instance"],
            self.arrays["t_read_from"],
            self.arrays["t_read_to"],
            strict=True,
        )
        return sorted({instance for instance, first, last in targets if first <= last})

    @property
    def opening_day(self) -> date | None:
        """:attr:`single_day` of a week, month or quarter when no target that reads has stored
        rows (a night's new period): each database's row is then its one sample
        (``sql.database_opening``), and each instance's its day's total (``instance_opening``)."""
        if self.period_type is PeriodType.daily or not self.reads_unstored:
            return None
        return self.single_day

    @property
    def single_day_read(self) -> DateWindow | None:
        """:attr:`single_day` of the daily period: the window statement's read for it, that day
        and the one before (its change)."""
        if self.period_type is not PeriodType.daily or (day := self.single_day) is None:
            return None
        return DateWindow(day - timedelta(days=1), day)


class WriteKind(StrEnum):
    window = "window"
    """The window statement (``sql.database_window`` / ``instance_window``)."""
    opening = "opening"
    """A new week, month or quarter's one day (``sql.database_opening`` / ``instance_opening``);
    a new day's instance rows (``sql.instance_opening``)."""
    appends = "appends"
    """One day appended to the stored rows (``sql.database_appends`` / ``instance_appends``)."""
    targets = "targets"
    """The general statement of the targets (``sql.database_targets`` / ``instance_targets``)."""
    complete_ended = "complete_ended"
    """Ended targets' rows marked complete (``sql.complete_ended``)."""
    rebuild_begin = "rebuild_begin"
    """Before a fleet's daily window: load into a bare table if the daily partition is empty
    (``aggregation.rebuild``; the repository looks)."""
    rebuild_finish = "rebuild_finish"
    """After the daily database rows: index the loaded table and swap it in, if loading."""


@dataclass(frozen=True)
class Write:
    """One statement of a period type's transaction: kind x level, and its parameters."""

    kind: WriteKind
    level: Level
    period_type: PeriodType
    instance_ids: tuple[int, ...] | None = None
    """The instances it reads (window, opening, same-day appends); None: the targets' own
    (their arrays)."""
    read: DateWindow | None = None
    """Window and opening: the days read; appends: the one day every reading target reads
    (None: the targets read different days, each its own)."""
    write_start: date | None = None
    """Window and opening: the first period written."""
    into_empty: bool | None = None
    """Window and targets: nothing is stored in the write range, so rows are INSERTed; None
    (a window scope's chunk): the repository looks."""
    shape: dict[str, bool] = field(default_factory=dict, hash=False, compare=True)
    """Targets: the statement's flags (:meth:`Targets.shape`)."""
    jit: bool = False
    """Compile the statement with JIT (only a window scope's fleet-wide chunks pay for it)."""


# JIT compilation of a window statement costs 0.1-0.3 s (its cost estimate, inflated by
# enable_nestloop = off, always asks for inlining and optimisation). It pays on a fleet-wide
# chunk (a quarter of 1,000 instances: 11.7 s -> 9.7 s), not on a few instances: a 20-instance
# quarter ran 0.1-0.25 s faster without it.
JIT_MIN_INSTANCE_DAYS = 20_000


def worth_jit(instance_count: int, plan: WindowPlan) -> bool:
    longest_read = max((c.read.end - c.read.start).days + 1 for c in plan.chunks)
    return instance_count * longest_read >= JIT_MIN_INSTANCE_DAYS


# A daily window of at least this many instance-days (a fleet's history: 1,000 instances x
# 365 days is 365,000) may rebuild the daily partition instead of writing into it
# (``aggregation.rebuild``, decision 0010): below it, the DDL and the index builds over the
# whole partition are not worth their fixed cost.
REBUILD_MIN_INSTANCE_DAYS = 100_000


def worth_rebuild(period_type: PeriodType, instance_count: int, plan: WindowPlan) -> bool:
    days = (plan.chunks[-1].read.end - plan.chunks[0].read.start).days + 1
    return period_type is PeriodType.daily and instance_count * days >= REBUILD_MIN_INSTANCE_DAYS


def plan_window(
    period_type: PeriodType, plan: WindowPlan, instance_ids: tuple[int, ...]
) -> tuple[Write, ...]:
    """An as-of or range scope: each chunk's window statement, database level first (the
    instance level reads no database rows, but a failure names the level that failed). A
    fleet's daily window is wrapped in ``rebuild_begin`` / ``rebuild_finish``."""
    if not instance_ids:
        return ()
    jit = worth_jit(len(instance_ids), plan)
    # Daily database rows are samples copied with one subtraction: nothing for JIT to speed up,
    # and its estimate made it inline and optimise (0.4 s of compilation per chunk).
    level_jit = {Level.database: jit and period_type is not PeriodType.daily, Level.instance: jit}

    def level_writes(level: Level) -> tuple[Write, ...]:
        return tuple(
            Write(
                WriteKind.window,
                level,
                period_type,
                instance_ids=instance_ids,
                read=chunk.read,
                write_start=chunk.write_start,
                jit=level_jit[level],
            )
            for chunk in plan.chunks
        )

    database = level_writes(Level.database)
    if worth_rebuild(period_type, len(instance_ids), plan):
        database = (
            Write(WriteKind.rebuild_begin, Level.database, period_type),
            *database,
            Write(WriteKind.rebuild_finish, Level.database, period_type),
        )
    return database + level_writes(Level.instance)


@dataclass(frozen=True)
class Ended:
    """Whether some target's period has ended (``Targets.ended``)."""

    reading: bool
    """The period of some target that reads samples."""
    unread: bool
    """The period of some target that reads none."""


def plan_targets(targets: Targets, today: date) -> tuple[Write, ...]:
    """An incremental scope: the table in the module docstring, per level."""
    if not targets.count:
        return ()
    ended = Ended(
        reading=targets.ended(today, reading=True), unread=targets.ended(today, reading=False)
    )
    return _plan_level(targets, Level.database, ended) + _plan_level(targets, Level.instance, ended)


def _plan_level(targets: Targets, level: Level, some: Ended) -> tuple[Write, ...]:
    period_type = targets.period_type
    complete = (Write(WriteKind.complete_ended, level, period_type),)
    # After a one-day write, complete_ended is for the ended targets' rows that it did not
    # write. The daily window writes every row of its targets' day at both levels (a daily
    # row is a sample's, and each instance's day has one), the opening every row of its new
    # period, and the instance appends every target's one stored row: those leave only the
    # targets that read nothing. The database appends leave, besides, the rows of databases
    # that got no sample that day. At 100,000 databases the UPDATE that found nothing to
    # complete cost 43-64 ms (database) and 11-17 ms (instance) of every night's daily period.
    ended = complete if some.unread else ()
    if targets.read is None:
        return ended
    reading = tuple(targets.reading_instances)
    if (read := targets.single_day_read) is not None:
        if level is Level.instance and targets.reads_unstored:
            # Each instance's new day is its one day's total; its change is against the stored
            # row of the day before (current: a pending change to that day would make it a
            # reading target), not the day's samples summed again (at 100,000 databases
            # 97-137 ms against 185-307 ms).
            totals = Write(
                WriteKind.opening,
                level,
                period_type,
                instance_ids=reading,
                read=DateWindow(read.end, read.end),
                write_start=read.end,
            )
            return (totals, *ended)
        window = Write(
            WriteKind.window,
            level,
            period_type,
            instance_ids=reading,
            read=read,
            write_start=read.end,
            into_empty=targets.reads_unstored,
        )
        return (window, *ended)
    if (day := targets.opening_day) is not None:
        opening = Write(
            WriteKind.opening,
            level,
            period_type,
            instance_ids=reading,
            read=DateWindow(day, day),
            write_start=periods.period_start(period_type, day),
        )
        return (opening, *ended)
    if targets.appends:
        appended = complete if some.reading and level is Level.database else ended
        # Every reading target reads the same day (the usual night): that day's samples of
        # the reading instances are the source, without joining the targets' arrays.
        if targets.read.start == targets.read.end:
            same_day = Write(
                WriteKind.appends, level, period_type, instance_ids=reading, read=targets.read
            )
            return (same_day, *appended)
        return (Write(WriteKind.appends, level, period_type), *appended)
    shape = targets.shape(database=level is Level.database)
    return (Write(WriteKind.targets, level, period_type, into_empty=targets.unstored, shape=shape),)
