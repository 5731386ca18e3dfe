"""The Live tab: the camera streams in, each frame comes back with every face boxed and
labelled, and a chart follows each person's expressions over the last seconds.

The computing is face_mtl.live's; this module wires it to Gradio. Each viewer's session lives
in a ``gr.State`` (never a global), and nothing of the stream is written to disk: frames come
in as data URLs, are analysed in memory and go back inline in HTML (a ``gr.Image`` output
would save every frame into Gradio's cache).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from ..analyzer import FaceAnalyzer
from ..limits import Limits
from ..live import (
    LiveSettings,
    LiveState,
    analyze_live_frame,
    chart_due,
    current_session,
    live_analyzer,
    live_detector,
    with_chart_drawn,
)
from ..render.live import annotate_live, frame_html, history_figure, plot_data

# The camera offers a frame this often; Gradio keeps only the newest frame a stream was sent
# and the handler takes it when the previous one is done, so slow frames are dropped, not
# queued: the viewer always sees the newest frame.
STREAM_EVERY = 0.05
# A stopped session's state is deleted by Gradio after this many seconds without a frame, in
# case the session-end handler never runs (the tab closed mid-stream).
STATE_TTL_S = 20

LIVE_INTRO = """Press **Record** under the camera: every face is boxed and labelled with its
expression, apparent age and gender, and the chart follows each person over the last
{history:.0f} seconds. Labels and chart are **smoothed over time** (each reading counts half
after {half_life:g} s), so they change smoothly rather than flicker. A session lasts up to
{seconds:.0f} s; {sessions} can run at once, others wait in line. Frames are analysed in memory
and dropped: nothing of the stream is stored."""

IDLE_STATUS = "Not running. Press **Record** under the camera to start a live session."

LiveOutputs = tuple[Any, Any, str, LiveState | None]


def live_status(state: LiveState, now: float, limits: Limits) -> str:
    """The line under the frame: people in view, frame rate, time left in the session."""
    people = sum(1 for p in state.people if p.last_seen == state.last_frame)
    elapsed = now - state.started
    return (
        f"**Live** · {people} {'person' if people == 1 else 'people'} in view · "
        f"{state.frame_rate():.1f} frames/s · {state.frames} frames · "
        f"session {elapsed:.0f} s of {limits.max_live_seconds:.0f} s (smoothed labels)"
    )


def ended_status(limits: Limits) -> str:
    return (
        f"**Live session ended** (stopped, or its {limits.max_live_seconds:.0f} s limit was reached) and "
        "forgotten. Press **Record** to start a new one; if the camera is still on, a new session "
        "starts by itself when your turn comes."
    )


def make_live_step(
    analyzer: FaceAnalyzer,
    settings: LiveSettings | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[np.ndarray | None, LiveState | None], LiveOutputs]:
    """The Live tab's per-frame handler bound to a loaded ``analyzer`` (whose limits it shows):
    (frame HxWx3 uint8 RGB or None, session state or None, time the last session ended or None)
    -> (frame HTML, chart or gr.skip(), status Markdown, new state). A state from before the
    last end is dropped (``current_session``). ``bench/bench_live.py`` times this function."""
    settings = settings or LiveSettings()
    detector = live_detector(settings, analyzer.device)
    view = live_analyzer(analyzer, settings)
    labels = analyzer.config.emotions

    def live_frame(frame: np.ndarray | None, state: LiveState | None, ended_at: float | None = None) -> LiveOutputs:
        if frame is None:
            return gr.skip(), gr.skip(), IDLE_STATUS, state
        now = clock()
        state = current_session(state, ended_at)
        result = analyze_live_frame(view, detector, frame, state, now, settings)
        state = result.state
        chart = gr.skip()  # the chart is redrawn a few times a second, not every frame
        if chart_due(state, now, settings):
            chart = plot_data(history_figure(state, labels, now, settings.history_seconds))
            state = with_chart_drawn(state, now)
        html = frame_html(annotate_live(result.image, result.faces), result.faces)
        return html, chart, live_status(state, now, analyzer.limits), state

    return live_frame


def _forget(state: LiveState | None) -> None:
    # Gradio calls this when it deletes an expired state (see STATE_TTL_S).
    if state is not None:
        print(f"face_mtl live: an idle session's state was deleted after {state.frames} frames", flush=True)


def end_live_session(
    limits: Limits, clock: Callable[[], float] = time.monotonic
) -> Callable[[LiveState | None], tuple[str, None, float]]:
    """The handler run when a stream ends (stopped, or the time limit): the session is
    forgotten (its state becomes None, and the end time is noted so that a frame finishing
    late cannot bring it back) and the status says how to start again."""

    def end(state: LiveState | None) -> tuple[str, None, float]:
        if state is not None:
            print(f"face_mtl live: a session ended after {state.frames} frames; its state is freed", flush=True)
        return ended_status(limits), None, clock()

    return end


def live_tab(analyzer: FaceAnalyzer, settings: LiveSettings | None = None) -> None:
    """The Live tab's components and events, created inside the caller's ``gr.Tab``."""
    settings = settings or LiveSettings()
    limits = analyzer.limits
    gr.Markdown(LIVE_INTRO.format(history=settings.history_seconds, half_life=settings.half_life,
                                  seconds=limits.max_live_seconds, sessions=limits.max_live_sessions))
    session = gr.State(None, time_to_live=STATE_TTL_S, delete_callback=_forget)
    ended_at = gr.State(None)  # when this viewer's last session ended (time.monotonic())
    with gr.Row():
        with gr.Column():
            camera = gr.Image(
                label="Camera",
                sources=["webcam"],
                streaming=True,
                type="numpy",
                height=400,
                elem_id="live-camera",
            )
        with gr.Column():
            frame_view = gr.HTML(label="Faces found (live)", elem_id="live-frame", min_height=300)
    status = gr.Markdown(IDLE_STATUS, elem_id="live-status")
    chart = gr.Plot(label=f"Each person's expressions, last {settings.history_seconds:.0f} s (smoothed)",
                    elem_id="live-chart")
    camera.stream(
        make_live_step(analyzer, settings),
        inputs=[camera, session, ended_at],
        outputs=[frame_view, chart, status, session],
        stream_every=STREAM_EVERY,
        time_limit=math.ceil(limits.max_live_seconds),
        concurrency_limit=limits.max_live_sessions,
        concurrency_id="live",
        show_progress="hidden",
        api_visibility="private",
    ).then(end_live_session(limits), inputs=session, outputs=[status, session, ended_at], queue=False,
           show_progress="hidden", api_visibility="private")
