"""Runs one `sql` task's query on DuckDB or on Spark SQL with Hive support.

Written into the attempt's folder by weir (src/task/sql/mod.rs) and run as
`python3 task/sql_runner.py task/sql.json` (duckdb) or under
`spark-submit` (hive). The settings file holds the query with `?` for each
parameter and the parameters' values as JSON data: values are bound by the
engine, never spliced into the query. Outputs follow weir's data contract:
`$WEIR_OUTPUTS/outputs.json` for `rows` (int) and `json` outputs, and
`$WEIR_OUTPUTS/<name>` for `file` outputs (CSV with a header, or Parquet).
The connection (a DuckDB database file, a Hive warehouse folder) is read
from the variable or file the task names, and never printed.
"""

import csv
import json
import os
import sys


def connection(settings):
    ref = settings.get("connection")
    if not ref:
        return None
    if ref.get("env"):
        value = os.environ.get(ref["env"])
        if value is None:
            sys.exit(f"weir: the connection's variable `{ref['env']}` is not given to the task")
        return value.strip()
    with open(ref["file"]) as f:
        return f.read().strip()


def plain(value):
    """A value as JSON can hold it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "asDict"):
        return plain(value.asDict(recursive=True))
    return str(value)


def write_outputs(settings, columns, rows, write_file):
    out = os.environ["WEIR_OUTPUTS"]
    scalars = {}
    for output in settings["outputs"]:
        name, kind = output["name"], output["type"]
        if kind == "int" and name == "rows":
            scalars[name] = len(rows)
        elif kind == "json":
            scalars[name] = [dict(zip(columns, (plain(v) for v in row))) for row in rows]
        elif kind == "file":
            path = os.path.join(out, name)
            if settings["format"] == "parquet":
                write_file(path)
            else:
                with open(path, "w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(columns)
                    for row in rows:
                        w.writerow(
                            "" if v is None else v if isinstance(v, str) else json.dumps(plain(v))
                            for v in row
                        )
    with open(os.path.join(out, "outputs.json"), "w") as f:
        json.dump(scalars, f)


def run_duckdb(settings):
    import duckdb

    database = connection(settings) or ":memory:"
    con = duckdb.connect(database)
    relation = con.execute(settings["query"], settings["params"])
    columns = [d[0] for d in relation.description] if relation.description else []
    rows = relation.fetchall() if columns else []

    def parquet(path):
        # The same statement, written by DuckDB itself.
        con.execute(
            f"COPY ({settings['query']}) TO '{path.replace(chr(39), chr(39) * 2)}' (FORMAT parquet)",
            settings["params"],
        )
        if os.path.isdir(path):
            raise SystemExit("weir: DuckDB wrote a folder where a file was expected")

    print(f"weir: the query returned {len(rows)} row(s)")
    write_outputs(settings, columns, rows, parquet)


def run_hive(settings):
    from pyspark.sql import SparkSession

    here = os.getcwd()
    home = os.path.join(here, "hive")
    warehouse = connection(settings) or os.path.join(home, "warehouse")
    metastore = os.path.join(home, "metastore_db")
    spark = (
        SparkSession.builder.appName("weir-sql")
        .config("spark.sql.warehouse.dir", warehouse)
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={metastore};create=true",
        )
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={home}")
        .enableHiveSupport()
        .getOrCreate()
    )
    try:
        # The session's catalog is the Hive metastore in the attempt's
        # folder (created here if the query itself names no table).
        print(f"weir: Hive metastore databases: {[d.name for d in spark.catalog.listDatabases()]}")
        frame = spark.sql(settings["query"], args=settings["params"] or None)
        columns = frame.columns
        rows = [tuple(r) for r in frame.collect()]

        def parquet(path):
            tmp = path + ".parts"
            frame.coalesce(1).write.parquet(tmp)
            part = next(p for p in sorted(os.listdir(tmp)) if p.endswith(".parquet"))
            os.replace(os.path.join(tmp, part), path)

        print(f"weir: the query returned {len(rows)} row(s)")
        write_outputs(settings, columns, rows, parquet)
    finally:
        spark.stop()


def main():
    with open(sys.argv[1]) as f:
        settings = json.load(f)
    if settings["engine"] == "duckdb":
        run_duckdb(settings)
    elif settings["engine"] == "hive":
        run_hive(settings)
    else:
        sys.exit(f"weir: the runner does not run engine `{settings['engine']}`")


if __name__ == "__main__":
    main()
