"""A trio-websocket client: subscribe, survive reconnects, keep local buckets."""

from ._client import (
    ClientChunk as ClientChunk,
    ClientEvent as ClientEvent,
    ClientNotification as ClientNotification,
    ClientStatistics as ClientStatistics,
    Gap as Gap,
    LanewayClient as LanewayClient,
    PublishError as PublishError,
    Summary as Summary,
    open_client as open_client,
    protocol_name as protocol_name,
)

__all__ = ["ClientChunk", "ClientEvent", "ClientNotification", "ClientStatistics", "Gap", "LanewayClient", "PublishError", "Summary", "open_client", "protocol_name"]
