"""weir's entry point in the driver pod of a SparkApplication, started by
Spark's PythonRunner (cluster mode) with the driver's JVM gateway in its
environment: it becomes `weir exec-task`, which stages the attempt's inputs,
runs the task's program joined to that JVM (spark_main.py), and reports the
outputs in this container's termination message, as a Job's pod does."""

import os
import sys

weir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weir")
os.execv(weir, [weir, "exec-task"] + sys.argv[1:])
