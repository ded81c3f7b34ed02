"""What the lake holds: the lake (folder | S3), the raw archive, landing Parquet."""
