"""The face_mtl Gradio app: Photo, Video, Live, Compare and About tabs. UI wiring only; the logic is in face_mtl.

Run ``python app.py`` (serves on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT, default
127.0.0.1:7860) or ``python app.py --share`` for a temporary public link.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import gradio as gr

from face_mtl import FaceAnalyzer
from face_mtl.limits import current_limits
from face_mtl.render.video import TABLE_COLUMNS as VIDEO_TABLE_COLUMNS
from face_mtl.ui import (
    DELETE_CACHE,
    QUEUE_CONCURRENCY,
    QUEUE_MAX_SIZE,
    about_markdown,
    example_clips,
    limit_malloc_arenas,
    on_gpu,
    start_memory_trimmer,
)
from face_mtl.ui.compare import clear_compare_outputs, make_compare_faces
from face_mtl.ui.live import live_tab
from face_mtl.ui.photo import clear_outputs, empty_table, example_photos, export_results, make_analyze_image
from face_mtl.ui.video import make_analyze_video

ROOT = Path(__file__).resolve().parent
MODEL_CARD = ROOT / "MODEL_CARD.md"
# Never served, whatever else is allowed: the code and weights, and the repository's history.
BLOCKED_PATHS = [str(ROOT / "face_mtl"), str(ROOT / ".git")]
VIDEO_GPU_SECONDS = 120  # ZeroGPU time slot per clip; photos use the default (60 s)

INTRO = """# face_mtl
Every face in a photo or clip, with its facial expression, apparent age, gender and ethnicity,
from one lightweight CNN. These are estimates of appearance, not facts about people: see **About**."""

COMPARE_INTRO = """Are these the same person? Add two photos: the largest face of each is compared
(faces are labelled A1, B1, ... largest first). The verdict is a statistical guess from one
small network, not proof: **About** gives its error rates. Nothing is stored."""


def build_app(analyzer: FaceAnalyzer) -> gr.Blocks:
    """The app's Blocks, with ``analyzer`` (loaded once) serving every request."""
    gr.set_static_paths([MODEL_CARD])  # the About tab links to it
    analyze_image = make_analyze_image(analyzer)
    with gr.Blocks(title="face_mtl: faces, expressions and attributes", delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Photo", id="photo"):
            # Outputs are created first (render=False) so the examples can sit under the input.
            faces_table = gr.Dataframe(
                empty_table(),
                label="Faces",
                interactive=False,
                wrap=True,
                elem_id="photo-table",
                render=False,
            )
            chart = gr.Plot(label="Emotion probabilities", elem_id="photo-chart", scale=3, render=False)
            downloads = gr.File(
                label="Download results (JSON, CSV)",
                file_count="multiple",
                interactive=False,
                elem_id="photo-downloads",
                render=False,
            )
            results = gr.JSON(label="Results (JSON)", max_height=360, elem_id="photo-json", render=False)
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(
                        label="Photo",
                        sources=["upload", "clipboard", "webcam"],
                        type="filepath",
                        image_mode=None,  # face_mtl reads any mode, EXIF orientation included
                        height=440,
                        elem_id="photo-input",
                    )
                    photo_button = gr.Button("Analyze faces", variant="primary", elem_id="photo-button")
                with gr.Column():
                    annotated = gr.Image(
                        label="Faces found", interactive=False, height=440, elem_id="photo-annotated"
                    )
            outputs = [annotated, faces_table, chart, results]
            gr.Examples(
                examples=example_photos(ROOT / "examples"),
                inputs=photo,
                outputs=outputs,
                fn=analyze_image,
                cache_examples=True,
                cache_mode="lazy",
                preprocess=False,  # as the button's event: the handler reads the file itself
                label="Example photos (public domain): click one, then see the results below",
            )
            faces_table.render()
            with gr.Row():
                chart.render()
                with gr.Column(scale=2):
                    downloads.render()
                    results.render()
            # preprocess=False: the handler gets the upload untouched and face_mtl reads it, so a
            # file that is not a photo (or is far too large) gets face_mtl's message, not an
            # error from the Image component's own decoding.
            photo_button.click(
                analyze_image, inputs=photo, outputs=outputs, api_name="analyze_image", preprocess=False
            )
            photo.input(clear_outputs, outputs=outputs, queue=False, api_visibility="private")
            # Files follow the JSON, whichever way it changed (button, API or cached example).
            results.change(export_results, inputs=results, outputs=downloads, api_visibility="private")

        with gr.Tab("Video", id="video"):
            timeline = gr.Plot(label="Emotions over time", elem_id="video-timeline", render=False)
            people = gr.Dataframe(
                empty_table(VIDEO_TABLE_COLUMNS),
                label="People",
                interactive=False,
                wrap=True,
                elem_id="video-table",
                render=False,
            )
            clip_json = gr.File(label="Results (JSON)", interactive=False, elem_id="video-json", render=False)
            clip_csv = gr.File(label="Results (CSV)", interactive=False, elem_id="video-csv", render=False)
            with gr.Row():
                with gr.Column():
                    clip = gr.Video(
                        label="Clip", sources=["upload", "webcam"], height=360, elem_id="video-input"
                    )
                    clip_button = gr.Button("Analyze clip", variant="primary", elem_id="video-button")
                with gr.Column():
                    annotated_clip = gr.Video(
                        label="Annotated clip", interactive=False, height=360, elem_id="video-annotated"
                    )
            analyze_clip = on_gpu(make_analyze_video(analyzer), duration=VIDEO_GPU_SECONDS)
            clip_outputs = [timeline, people, annotated_clip, clip_json, clip_csv]
            clips = example_clips(ROOT / "examples")
            if clips:
                gr.Examples(
                    examples=clips,
                    inputs=clip,
                    outputs=clip_outputs,
                    fn=analyze_clip,
                    cache_examples=True,
                    cache_mode="lazy",
                    label="Example clip (public-domain portraits): click it, then see the results below",
                )
            timeline.render()
            people.render()
            with gr.Row():
                clip_json.render()
                clip_csv.render()
            clip_button.click(analyze_clip, inputs=clip, outputs=clip_outputs, api_name="analyze_video")

        with gr.Tab("Live", id="live"):
            live_tab(analyzer)

        with gr.Tab("Compare", id="compare"):
            gr.Markdown(COMPARE_INTRO)
            with gr.Row():
                compare_inputs = [
                    gr.Image(
                        label=f"Photo {name}",
                        sources=["upload", "clipboard", "webcam"],
                        type="filepath",
                        image_mode=None,
                        height=360,
                        elem_id=f"compare-input-{name.lower()}",
                    )
                    for name in ("A", "B")
                ]
            compare_button = gr.Button("Compare faces", variant="primary", elem_id="compare-button")
            verdict = gr.Markdown(elem_id="compare-verdict")
            with gr.Row():
                compare_annotated = [
                    gr.Image(label=f"Faces in photo {name}", interactive=False, height=360,
                             elem_id=f"compare-annotated-{name.lower()}")
                    for name in ("A", "B")
                ]
            heatmap = gr.Plot(label="Similarity of every face pair", elem_id="compare-heatmap")
            compare_outputs = [*compare_annotated, verdict, heatmap]
            compare_button.click(
                make_compare_faces(analyzer), inputs=compare_inputs, outputs=compare_outputs,
                api_name="compare_faces",
            )
            for compare_input in compare_inputs:
                compare_input.input(clear_compare_outputs, outputs=compare_outputs, queue=False,
                                    api_visibility="private")

        with gr.Tab("About", id="about"):
            gr.Markdown(about_markdown(analyzer.config, f"/gradio_api/file={MODEL_CARD}"), elem_id="about")
    return demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--share", action="store_true", help="also serve on a temporary public gradio.live link"
    )
    args = parser.parse_args()
    limit_malloc_arenas()  # keeps a long-running server's memory from creeping up (bench/load_test.py)
    start_memory_trimmer()  # and hands freed pages back (docs/soak.md)
    demo = build_app(FaceAnalyzer())
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        share=args.share,
        max_file_size=current_limits().max_upload_bytes,
        allowed_paths=[],  # beyond its own uploads and outputs, the app serves MODEL_CARD.md only
        blocked_paths=BLOCKED_PATHS,
    )


if __name__ == "__main__":
    main()
