"""The IBOV marts computed from landing: their SQL and their assets."""
