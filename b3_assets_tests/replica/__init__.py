"""A local replica of B3's Carteira do Dia site (page, JSON API by code and by sector, the
period's theoretical portfolio and preview, CSV download) with switchable faults, so the
fetchers are tested without the network. See ``server.py``."""

from b3_assets_tests.replica.portfolios import (
    DEFAULT_DATE,
    ReplicaPeriod,
    ReplicaPortfolio,
    Row,
    api_page,
    csv_bytes,
    generate_period,
    generate_portfolio,
    period_for,
    period_page,
    portfolio_for,
    sample_dates,
)
from b3_assets_tests.replica.server import (
    ENDPOINTS,
    FAULT_MODES,
    Fault,
    Replica,
    Request,
    is_browser,
)

__all__ = [
    "DEFAULT_DATE",
    "ENDPOINTS",
    "FAULT_MODES",
    "Fault",
    "Replica",
    "ReplicaPeriod",
    "ReplicaPortfolio",
    "Request",
    "Row",
    "api_page",
    "csv_bytes",
    "generate_period",
    "generate_portfolio",
    "is_browser",
    "period_for",
    "period_page",
    "portfolio_for",
    "sample_dates",
]
