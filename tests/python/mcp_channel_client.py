"""End-to-end check of `relay mcp` with the official MCP Python SDK (`mcp` 2.x) as the client.

Run by `tests/mcp_python.rs`:  python mcp_channel_client.py <relay binary> <data dir>
The data dir must have a running hub. Two sessions start: `py-bob` listens for
`notifications/claude/channel` through a `NotificationBinding`, `py-alice` calls `relay_send`.
Checks initialize (server info, the `claude/channel` capability, instructions), the tool list,
one tool call and one received channel notification. Exits 0 and prints `ok` on success.
"""

from __future__ import annotations

import json
import sys
from contextlib import AsyncExitStack

import anyio
from pydantic import BaseModel, ConfigDict

from mcp.client.extension import NotificationBinding
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

CHANNEL_METHOD = "notifications/claude/channel"
PATIENCE_SECONDS = 20
EXPECTED_TOOLS = {
    "relay_peers", "relay_send", "relay_ask", "relay_inbox", "relay_reply", "relay_broadcast",
    "relay_rename", "relay_join", "relay_leave", "relay_room", "relay_rooms",
    "relay_group_create", "relay_group_invite", "relay_group_remove", "relay_group_leave",
    "relay_group_delete", "relay_group_info", "relay_group_send", "relay_group_history",
    "relay_group_list", "relay_status",
}


class ChannelParams(BaseModel):
    """The exact shape of the channel notification: string content, string-only meta."""

    model_config = ConfigDict(strict=True, extra="forbid")
    content: str
    meta: dict[str, str]


async def open_session(stack: AsyncExitStack, relay: str, data_dir: str, name: str,
                       bindings: list[NotificationBinding] | None = None) -> ClientSession:
    server = StdioServerParameters(
        command=relay, args=["mcp", "--data-dir", data_dir, "--no-spawn", "--as", name])
    read, write = await stack.enter_async_context(stdio_client(server))
    session = await stack.enter_async_context(
        ClientSession(read, write, notification_bindings=bindings or []))
    return session


async def main(relay: str, data_dir: str) -> None:
    received: list[ChannelParams] = []
    arrived = anyio.Event()

    async def on_channel(params: ChannelParams) -> None:
        received.append(params)
        arrived.set()

    binding = NotificationBinding(method=CHANNEL_METHOD, params_type=ChannelParams,
                                  handler=on_channel)
    async with AsyncExitStack() as stack:
        bob = await open_session(stack, relay, data_dir, "py-bob", [binding])
        initialized = await bob.initialize()
        assert initialized.server_info.name == "relay", initialized.server_info
        experimental = initialized.capabilities.experimental or {}
        assert experimental.get("claude/channel") == {}, initialized.capabilities
        assert initialized.capabilities.tools is not None
        assert "relay_reply" in (initialized.instructions or ""), initialized.instructions

        tools = {tool.name: tool for tool in (await bob.list_tools()).tools}
        assert set(tools) == EXPECTED_TOOLS, sorted(tools)
        send_schema = tools["relay_send"].input_schema
        assert sorted(send_schema["required"]) == ["text", "to"], send_schema
        assert send_schema["additionalProperties"] is False, send_schema

        alice = await open_session(stack, relay, data_dir, "py-alice")
        await alice.initialize()
        result = await alice.call_tool("relay_send", {"to": "py-bob", "text": "hello <from> python"})
        assert not result.is_error, result
        sent = json.loads(result.content[0].text)
        assert sent["ok"] is True and sent["status"] == "delivered", sent
        assert result.structured_content == sent, result.structured_content

        with anyio.fail_after(PATIENCE_SECONDS):
            await arrived.wait()
        params = received[0]
        assert params.meta["from"] == "py-alice", params.meta
        assert params.meta["kind"] == "direct", params.meta
        assert params.meta["msg_id"] == sent["msg_id"], params.meta
        assert "hello &lt;from&gt; python" in params.content, params.content
        assert params.content.startswith('<peer-message from="py-alice"'), params.content
    print("ok")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mcp_channel_client.py <relay binary> <data dir>")
    anyio.run(main, sys.argv[1], sys.argv[2])
