"""Pipecat's Twilio phone example, pointed at the bench's fake providers (`npm run bench`).

The pipeline is the one of Pipecat's Twilio example: a FastAPI WebSocket endpoint for Twilio
Media Streams (TwilioFrameSerializer), Deepgram STT -> OpenAI LLM -> TTS, Silero VAD,
interruptions on. Two deliberate differences, both so the same client turns can drive it:
the TTS is ElevenLabs over HTTP (the provider our worker uses in the bench, behind the same
fake) and the user turn ends on Deepgram's final transcript (SpeechTimeout stop strategy with
no extra wait) instead of the Smart Turn model, which never fires on the bench's synthetic
silence. The greeting is a fixed sentence, like the worker's `first_message`.

With `PIPECAT_STT=flux` (or `flux-eager`) the STT is Pipecat's Deepgram Flux service on
`/v2/listen` instead of Nova: Flux ends the turn itself (`EndOfTurn`), so the bot takes the turn
strategies the service recommends (no local VAD or speech timeout), and `flux-eager` turns on
Pipecat's eager end of turn (an LLM response started on `EagerEndOfTurn`, held until
`EndOfTurn`, discarded on `TurnResumed`).

Run: python bot.py --port N; provider URLs and keys from the environment
(DEEPGRAM_URL, OPENAI_BASE_URL, ELEVENLABS_URL and their keys; PIPECAT_STT = nova, flux or
flux-eager, default nova).
"""

import argparse
import asyncio
import os
import sys

import aiohttp
import uvicorn
from fastapi import FastAPI, WebSocket
from loguru import logger

from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.task import PipelineParams
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.deepgram.flux.stt import DeepgramFluxSTTService
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_start import TranscriptionUserTurnStartStrategy, VADUserTurnStartStrategy
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

app = FastAPI()


@app.get("/health")
async def health():
    return {"ok": True}


async def run_bot(websocket: WebSocket, session: aiohttp.ClientSession):
    _, call_data = await parse_telephony_websocket(websocket)
    serializer = TwilioFrameSerializer(
        stream_sid=call_data["stream_id"],
        call_sid=call_data["call_id"],
        # Hang-up goes through Twilio's REST API, which the bench has no fake for.
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=websocket,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    stt_mode = os.environ.get("PIPECAT_STT", "nova")
    if stt_mode in ("flux", "flux-eager"):
        # Flux detects the turn itself: the service recommends turn strategies driven by its
        # StartOfTurn/EndOfTurn (and, eager, EagerEndOfTurn/TurnResumed), used as they are.
        stt = DeepgramFluxSTTService(
            api_key=os.environ["DEEPGRAM_API_KEY"],
            url=f"{os.environ['DEEPGRAM_URL']}/v2/listen",
            enable_eager_end_of_turn=stt_mode == "flux-eager",
        )
        user_params = LLMUserAggregatorParams()
    elif stt_mode == "nova":
        stt = DeepgramSTTService(
            api_key=os.environ["DEEPGRAM_API_KEY"], base_url=os.environ["DEEPGRAM_URL"]
        )
        user_params = LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(),
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.0)],
            ),
        )
    else:
        raise SystemExit(f"PIPECAT_STT must be nova, flux or flux-eager, not {stt_mode!r}")
    llm = OpenAILLMService(
        api_key=os.environ["OPENAI_API_KEY"],
        base_url=os.environ["OPENAI_BASE_URL"],
        settings=OpenAILLMService.Settings(
            model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), system_instruction="Be brief."
        ),
    )
    tts = ElevenLabsHttpTTSService(
        api_key=os.environ["ELEVENLABS_API_KEY"],
        base_url=os.environ["ELEVENLABS_URL"],
        aiohttp_session=session,
        settings=ElevenLabsHttpTTSService.Settings(voice="rachel", model="eleven_flash_v2_5"),
    )

    context = LLMContext()
    aggregators = LLMContextAggregatorPair(context, user_params=user_params)

    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            aggregators.user(),
            llm,
            tts,
            transport.output(),
            aggregators.assistant(),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(transport, client):
        await worker.queue_frames([TTSSpeakFrame("Hello.")])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport, client):
        await worker.cancel()

    await runner.run()


@app.websocket("/ws")
async def media_stream(websocket: WebSocket):
    await websocket.accept()
    async with aiohttp.ClientSession() as session:
        await run_bot(websocket, session)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("PIPECAT_LOG_LEVEL", "WARNING"))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
