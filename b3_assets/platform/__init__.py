"""The environment's machinery: resources, query engines, local AWS, Glue runs, alerts."""
