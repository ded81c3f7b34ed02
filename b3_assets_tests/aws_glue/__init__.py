"""Tests of glue/ (the refine, the Glue job, the serving copy, the catalog)."""
