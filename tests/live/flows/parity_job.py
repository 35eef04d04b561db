"""The flow ``prefect deploy`` deploys in the parity test (``parity_prefect.yaml``)."""

from __future__ import annotations

from prefect import flow


@flow(name="parity-job")
def parity_job(
    region: str = "nowhere", limits: dict | None = None, label: str = "", config: dict | None = None
) -> dict:
    return {"region": region, "limits": limits, "label": label, "config": config}
