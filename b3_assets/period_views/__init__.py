"""B3's views of the four-month period: theoretical portfolio and preview."""
