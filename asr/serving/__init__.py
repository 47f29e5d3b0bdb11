"""Serving a model over HTTP: OpenAI's transcription API (`POST /v1/audio/transcriptions`), a
health check, the model list and a one-page web client, as an ASGI app (FastAPI) that `asr serve`
runs under uvicorn. Concurrent requests wait in a bounded queue and are decoded together in
batches by one worker (`batching`); uploads go to a private temporary folder and never out of it
(`uploads`); responses are rendered in OpenAI's formats (`formats`) and errors in its shape (`errors`).

Needs the `serve` extra (fastapi, uvicorn, python-multipart); nothing else in the package imports it.
"""
