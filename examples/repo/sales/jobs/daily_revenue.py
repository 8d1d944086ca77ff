# The daily-revenue Spark job (task `daily-revenue`): one day of orders
# (CSV) aggregated by region and product into a Parquet dataset.
#
# weir runs it with `spark` (a SparkSession), `inputs` (the task's inputs;
# files as local paths), `output_path(name)` and `outputs`.
from pyspark.sql import functions as F

orders = spark.read.csv(inputs["orders"], header=True, inferSchema=True)

revenue = (
    orders.withColumn("amount", F.col("quantity") * F.col("unit_price"))
    .groupBy("region", "product")
    .agg(
        F.count("*").alias("orders"),
        F.sum("quantity").alias("units"),
        F.round(F.sum("amount"), 2).alias("revenue"),
    )
    .orderBy("region", "product")
)

revenue.write.parquet(output_path("revenue"))
outputs["groups"] = revenue.count()
print(f"{outputs['groups']} region/product groups")
