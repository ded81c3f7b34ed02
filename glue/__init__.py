"""The refine job of b3-pipeline: one SQL transform (refine.sql) run on AWS Glue (Spark) or
locally (DuckDB), plus the Glue job entry and catalog registration.

Deployed to Glue on its own (``--extra-py-files``): nothing here may import ``b3_assets``.
"""
