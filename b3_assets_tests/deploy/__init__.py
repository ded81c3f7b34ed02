"""Tests of what deploys on its own: infra/, deploy/, lambda_handler/."""
