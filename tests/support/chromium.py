"""Headless Chromium driven over its DevTools protocol: load a page, collect what went wrong.

One browser per test module (`Chromium.launch`), a fresh tab per page. While a
page loads and after, every exception, console error, log error (a refused
script or resource shows here) and network request to anything but the file
itself is collected, so a test can assert the page is clean and self-contained.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)
LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")
VIEWPORT = {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}


class DevToolsError(RuntimeError):
    """A DevTools command answered with an error."""


class Connection:
    """Commands and their answers over one websocket; events go to the page they belong to."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.pages: dict[str, Page] = {}
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            if "id" in message:
                future = self.waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif message.get("sessionId") in self.pages:
                self.pages[message["sessionId"]].event(message["method"], message["params"])

    async def send(self, method: str, session: str | None = None, **params: Any) -> Any:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[number] = future
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.socket.send(json.dumps(message))
        answer = await asyncio.wait_for(future, 30)
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error']}")
        return answer.get("result", {})


@dataclass
class Page:
    """One tab: what it reported, and commands on it."""

    connection: Connection
    session: str
    url: str = ""
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    loaded: asyncio.Event = field(default_factory=asyncio.Event)

    def event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.problems.append(
                f"exception: {details.get('exception', {}).get('description') or details['text']}"
            )
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            texts = [str(arg.get("value", arg.get("description", ""))) for arg in params["args"]]
            self.problems.append(f"console.{params['type']}: {' '.join(texts)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.problems.append(f"log: {params['entry']['text']}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.loadEventFired":
            self.loaded.set()

    async def send(self, method: str, **params: Any) -> Any:
        return await self.connection.send(method, self.session, **params)

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of `expression` evaluated in the page."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails']['text']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path, selector: str | None = None) -> bytes:
        """A PNG of the whole page (or of the element `selector` picks), also written to `path`."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if selector is not None:
            box = await self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect(); return {x: r.x + scrollX, y: r.y + scrollY, "
                "width: r.width, height: r.height}; })()"
            )
            params["clip"] = {**box, "scale": 1}
        else:
            size = await self.evaluate(
                "({width: document.documentElement.scrollWidth, "
                "height: document.documentElement.scrollHeight})"
            )
            params["clip"] = {"x": 0, "y": 0, **size, "scale": 1}
        data = base64.b64decode((await self.send("Page.captureScreenshot", **params))["data"])
        path.write_bytes(data)
        return data

    def outside_requests(self) -> list[str]:
        """Requests for anything but the page's own file."""
        return [url for url in self.requests if url != self.url]


class Chromium:
    """A headless Chromium process and its DevTools connection."""

    def __init__(self, process: subprocess.Popen[bytes], connection: Connection) -> None:
        self.process = process
        self.connection = connection

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, profile: Path) -> AsyncIterator[Chromium]:
        """Start Chromium on an empty profile; fail (not skip) when it is not installed."""
        if shutil.which(CHROMIUM) is None:
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            url = await asyncio.wait_for(asyncio.to_thread(_devtools_url, process), 60)
            async with connect(url, max_size=None) as socket:
                connection = Connection(socket)
                try:
                    yield cls(process, connection)
                finally:
                    connection.reader.cancel()
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    async def open(self, url: str) -> Page:
        """A new tab that has loaded `url`, watched from before the navigation starts."""
        target = await self.connection.send("Target.createTarget", url="about:blank")
        attached = await self.connection.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        page = Page(self.connection, attached["sessionId"], url)
        self.connection.pages[page.session] = page
        for domain in ("Page", "Runtime", "Log", "Network"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", **VIEWPORT)
        await page.send("Page.navigate", url=url)
        await asyncio.wait_for(page.loaded.wait(), 30)
        return page


def _devtools_url(process: subprocess.Popen[bytes]) -> str:
    """The browser's websocket address from its stderr; the rest of stderr is drained."""
    assert process.stderr is not None
    seen = b""
    for line in process.stderr:
        seen += line
        found = LISTENING.search(line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return found.group(1).decode()
    raise RuntimeError(
        f"chromium exited before DevTools listened:\n{seen.decode(errors='replace')}"
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def png_colours(data: bytes) -> set[bytes]:
    """The distinct RGB colours of an 8-bit non-interlaced PNG (pure Python: keep images small)."""
    png_size(data)
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and color in (2, 6), f"unexpected PNG format {depth}/{color}"
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                nearest = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + nearest) & 0xFF
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return colours
