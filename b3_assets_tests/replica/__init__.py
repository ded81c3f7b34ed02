"""A local replica of B3's Carteira do Dia site (page, JSON API, CSV download) with
switchable faults, so the fetchers are tested without the network. See ``server.py``."""

from b3_assets_tests.replica.portfolios import (
    DEFAULT_DATE,
    ReplicaPortfolio,
    Row,
    api_page,
    csv_bytes,
    generate_portfolio,
    portfolio_for,
    sample_dates,
)
from b3_assets_tests.replica.server import FAULT_MODES, Fault, Replica, Request, is_browser

__all__ = [
    "DEFAULT_DATE",
    "FAULT_MODES",
    "Fault",
    "Replica",
    "ReplicaPortfolio",
    "Request",
    "Row",
    "api_page",
    "csv_bytes",
    "generate_portfolio",
    "is_browser",
    "portfolio_for",
    "sample_dates",
]
