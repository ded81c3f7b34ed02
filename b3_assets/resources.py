"""The resources of each environment, under the same keys (``B3_ENV`` picks the set).

Asset code asks for ``lake``, ``b3``, ``glue``, ``glue_watcher``, ``catalog`` and
``landing_io_manager`` and never learns where it runs; only this module knows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from b3_assets.b3.payload import RawPayload
from b3_assets.catalog import AthenaCatalog, DuckDBCatalog, QueryEngine
from b3_assets.glue_runs import GlueJobWatcher, LocalGlue
from b3_assets.lake import Lake, LocalLake, S3Lake
from b3_assets.landing import LANDING_PREFIX
from b3_assets.settings import Settings
from lambda_handler.handler import Config as LambdaConfig
from lambda_handler.handler import handle, object_created_event


@dataclass(frozen=True)
class B3Source:
    """The B3 site as configured (``B3_BASE_URL``, ``B3_FETCH``, ``B3_BROWSER_PATH``)."""

    base_url: str
    mode: str = "auto"
    browser_path: str | None = None
    timeout_s: float = 20.0
    retries: int = 4

    def fetch(self) -> RawPayload:
        from b3_assets.b3.fetch import fetch_portfolio

        return fetch_portfolio(
            self.mode,
            self.base_url,
            browser_path=self.browser_path,
            timeout_s=self.timeout_s,
            retries=self.retries,
        )


def aws_client(settings: Settings, service: str) -> Any:
    import boto3

    return boto3.client(
        service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url
    )


def local_event_path(lake: LocalLake, glue: LocalGlue, job_name: str) -> None:
    """Wire the local lake to the Lambda code as S3 + the EventBridge rule are on AWS.

    Only landing objects are delivered (the rule's prefix); the handler itself still decides
    exactly as it does in Lambda, and the local Glue runs synchronously."""
    config = LambdaConfig(job_name=job_name, bucket=lake.bucket, landing_prefix=LANDING_PREFIX)

    def deliver(bucket: str, key: str) -> None:
        if key.startswith(LANDING_PREFIX + "/"):
            handle(object_created_event(bucket, key), glue, config)

    lake.add_listener(deliver)


@dataclass(frozen=True)
class Platform:
    """The objects behind the resource keys, for Dagster and for the CLI alike."""

    settings: Settings
    lake: Lake
    b3: B3Source
    glue: Any
    catalog: QueryEngine

    @property
    def glue_watcher(self) -> GlueJobWatcher:
        return GlueJobWatcher(self.glue, self.settings.glue_job_name)

    def resources(self) -> dict[str, Any]:
        # Imported here: the CLI builds a Platform too and should not pay for Dagster.
        from b3_assets.io_managers import LandingIOManager

        return {
            "lake": self.lake,
            "b3": self.b3,
            "glue": self.glue,
            "glue_watcher": self.glue_watcher,
            "catalog": self.catalog,
            "landing_io_manager": LandingIOManager(self.lake),
        }


def build_platform(settings: Settings | None = None) -> Platform:
    settings = settings or Settings.from_env()
    b3 = B3Source(
        settings.base_url,
        settings.fetch,
        settings.browser_path,
        settings.http_timeout_s,
        settings.http_retries,
    )
    if settings.env == "aws":
        return Platform(
            settings=settings,
            lake=S3Lake(settings.bucket, aws_client(settings, "s3")),
            b3=b3,
            glue=aws_client(settings, "glue"),
            catalog=AthenaCatalog(
                aws_client(settings, "athena"),
                settings.glue_database,
                settings.athena_workgroup,
                settings.athena_output,
            ),
        )
    data_dir = settings.data_dir.resolve()
    lake = LocalLake(data_dir)
    catalog = DuckDBCatalog(data_dir)
    glue = LocalGlue(data_dir, data_dir / "_glue_job_runs", on_success=lambda _d: catalog.refresh())
    local_event_path(lake, glue, settings.glue_job_name)
    return Platform(settings, lake, b3, glue, catalog)
