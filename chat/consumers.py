"""WebSocket transport (filled in by the transports work)."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """Placeholder: refuses every connection until the WebSocket transport lands."""

    async def connect(self) -> None:
        await self.close(code=4403)
