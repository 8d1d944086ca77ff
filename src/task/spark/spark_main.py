"""weir's driver program for a `spark` task (written into the attempt's
folder and run by spark-submit): it builds the SparkSession, reads the
task's inputs, runs the task's program with them, and writes its outputs
under the data contract of DESIGN.md section 6.

The program sees:
  spark            a ready SparkSession
  inputs           the task's inputs (files and directories as local paths)
  outputs          a dict: what it puts there becomes outputs.json
  output_path(n)   where output `n` of type file or directory is written,
                   e.g. df.write.parquet(output_path("daily"))
Inputs are data, never code: the program reads them from `inputs`.
"""

import json
import os
import sys
import traceback


def main():
    program, shown_as, error_log = sys.argv[1], sys.argv[2], sys.argv[3]
    outputs_dir = os.environ["WEIR_OUTPUTS"]
    with open(os.environ["WEIR_INPUTS"]) as f:
        inputs = json.load(f)
    with open(program) as f:
        code = compile(f.read(), shown_as, "exec")

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(os.environ.get("WEIR_SPARK_APP", "weir")).getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    outputs = {}
    scope = {
        "__name__": "__main__",
        "__file__": shown_as,
        "spark": spark,
        "inputs": inputs,
        "outputs": outputs,
        "output_path": lambda name: os.path.join(outputs_dir, name),
    }
    failure = None
    try:
        exec(code, scope)
    except SystemExit as e:
        if e.code not in (None, 0):
            failure = f"the program exited with {e.code!r}\n"
    except BaseException as e:
        # The program's own frames (not this file's, not PySpark's), then
        # the exception.
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == shown_as]
        failure = "Traceback (most recent call last, the program's lines):\n"
        failure += "".join(traceback.format_list(frames))
        failure += "".join(traceback.format_exception_only(type(e), e))
    finally:
        try:
            spark.stop()
        except Exception:  # the program's failure is the one to report
            pass
    if failure is None and outputs:
        path = os.path.join(outputs_dir, "outputs.json")
        written = {}
        if os.path.exists(path):
            with open(path) as f:
                written = json.load(f)
        written.update(outputs)
        with open(path, "w") as f:
            json.dump(written, f, default=str)
    if failure is not None:
        # spark-submit passes this process's stderr on as its stdout: the
        # failure goes to the attempt's stderr.log itself (Spark's own log
        # there is quiet), whose end the attempt's error quotes.
        sys.stderr.write(failure)
        with open(error_log, "a") as f:
            f.write(failure)
        sys.exit(1)


main()
