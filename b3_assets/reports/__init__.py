"""What people see: the charts (pure) and the report assets."""
