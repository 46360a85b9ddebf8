"""A Pipecat bot behind Switchboard, with no cloud services.

Switchboard opens a Twilio Media Streams WebSocket to `/ws` for every answered call. The
bot reads the `connected` and `start` messages with Pipecat's own telephony helper, takes
the call context from `start.customParameters`, and runs a Pipecat pipeline over
`FastAPIWebsocketTransport` + `TwilioFrameSerializer`:

1. it speaks at once: a greeting tone (440 Hz, generated here at 16 kHz) pushed as
   `TTSAudioRawFrame`s, which the serializer resamples to 8 kHz mu-law;
2. it listens for a few seconds, counting the `InputAudioRawFrame`s it hears;
3. it reports `interested` to the call's `outcome_url` with the call's token, with notes
   naming how many audio frames it heard;
4. it ends the pipeline, which closes the socket (Switchboard then ends the call; the
   serializer never calls Twilio's REST API: `auto_hang_up=False`).

Run: `python bot.py --host 127.0.0.1 --port 8765` (GET /healthz answers when it is up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import struct
from importlib.metadata import version

import aiohttp
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from loguru import logger
from pipecat.frames.frames import Frame, InputAudioRawFrame, TTSAudioRawFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

PIPECAT_VERSION = version("pipecat-ai")
SAMPLE_RATE = 16_000

# How long the bot talks and listens; the environment may change them.
GREETING_SECS = float(os.environ.get("BOT_GREETING_SECS", "1.0"))
LISTEN_SECS = float(os.environ.get("BOT_LISTEN_SECS", "3.0"))
OUTCOME = os.environ.get("BOT_OUTCOME", "interested")

app = FastAPI()


def tone(seconds: float, hz: float = 440.0, rate: int = SAMPLE_RATE) -> bytes:
    """A sine tone as 16-bit little-endian mono PCM."""
    n = int(seconds * rate)
    amplitude = 0.3 * 32767
    return struct.pack(
        f"<{n}h", *(int(amplitude * math.sin(2 * math.pi * hz * i / rate)) for i in range(n))
    )


def greeting_frames(seconds: float) -> list[TTSAudioRawFrame]:
    """The greeting in 20 ms frames, as a TTS service would push them."""
    pcm = tone(seconds)
    step = SAMPLE_RATE // 50 * 2  # 20 ms of 16-bit samples
    return [
        TTSAudioRawFrame(audio=pcm[i : i + step], sample_rate=SAMPLE_RATE, num_channels=1)
        for i in range(0, len(pcm), step)
    ]


class Listener(FrameProcessor):
    """Counts the caller's audio frames; lets every other frame through."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.heard += 1
            return
        await self.push_frame(frame, direction)


async def report_outcome(context: dict[str, str], heard: int) -> int:
    """POSTs the outcome to Switchboard's agent API with the call's token; returns the status."""
    body = {
        "call_id": context["call_id"],
        "outcome": OUTCOME,
        "notes": f"pipecat-ai {PIPECAT_VERSION} heard {heard} audio frames",
    }
    headers = {"Authorization": f"Bearer {context['token']}"}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(context["outcome_url"], json=body, headers=headers) as response:
            text = await response.text()
            logger.info(f"call {context['call_id']}: outcome {OUTCOME} -> {response.status} {text}")
            return response.status


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok", "pipecat": PIPECAT_VERSION}


@app.websocket("/ws")
async def media_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    # Reads `connected` and `start`; Twilio's `customParameters` arrive as `body`.
    # Switchboard checks that the agent answers (a handshake, then close) before it
    # dials: a socket closed before `start` is such a probe, not a call.
    try:
        transport_type, call_data = await parse_telephony_websocket(websocket)
    except (WebSocketDisconnect, ValueError) as e:  # pipecat raises ValueError for it
        logger.debug(f"closed before start (a reachability probe): {e}")
        return
    if transport_type != "twilio":
        logger.error(f"not a Twilio media stream ({transport_type}); closing")
        await websocket.close(code=1008)
        return
    context = dict(call_data.body or {})
    missing = [k for k in ("call_id", "token", "outcome_url") if not context.get(k)]
    if missing:
        logger.error(f"start.customParameters lacks {missing}; closing")
        await websocket.close(code=1008)
        return
    contact = json.loads(context.get("contact") or "{}")
    logger.info(
        f"call {context['call_id']} (stream {call_data.stream_id}) to {contact.get('phone')}: "
        f"script {context.get('script')!r}"
    )

    serializer = TwilioFrameSerializer(
        stream_sid=call_data.stream_id,
        call_sid=call_data.call_id,
        account_sid=os.environ.get("TWILIO_ACCOUNT_SID"),
        auth_token=os.environ.get("TWILIO_AUTH_TOKEN"),
        # No hang-up through Twilio's REST API: closing the stream ends the call.
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            # 20 ms per media message: 160 mu-law bytes, as Twilio itself sends.
            audio_out_10ms_chunks=2,
            audio_out_end_silence_secs=0,
            serializer=serializer,
        ),
    )
    listener = Listener()
    worker = PipelineWorker(
        Pipeline([transport.input(), listener, transport.output()]),
        params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE, audio_out_sample_rate=SAMPLE_RATE),
        enable_rtvi=False,
    )
    conversation: asyncio.Task | None = None

    async def converse() -> None:
        await worker.queue_frames(greeting_frames(GREETING_SECS))
        await asyncio.sleep(GREETING_SECS + LISTEN_SECS)
        try:
            await report_outcome(context, listener.heard)
        except Exception as e:  # the call still ends
            logger.error(f"call {context['call_id']}: outcome report failed: {e}")
        await worker.end(reason="conversation over")

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, websocket):
        nonlocal conversation
        conversation = asyncio.create_task(converse())

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, websocket):
        logger.info(f"call {context['call_id']}: the stream closed")
        await worker.cancel(reason="stream closed")

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    try:
        await runner.run()
    finally:
        if conversation is not None and not conversation.done():
            conversation.cancel()
    logger.info(f"call {context['call_id']}: done, heard {listener.heard} audio frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
