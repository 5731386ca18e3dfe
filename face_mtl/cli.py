"""The ``face-mtl`` command line: analyze, video, train, eval."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def _format_table(image: str, faces: list) -> str:
    if not faces:
        return f"{image}: no faces found"
    lines = [f"{image}: {len(faces)} face(s)"]
    header = f"{'#':>3} {'box (x1,y1,x2,y2)':<24} {'score':>5} {'emotion':<16} {'age':>5} {'gender':<13} ethnicity"
    lines.append(header)
    for i, face in enumerate(faces, 1):
        box = ",".join(f"{v:.0f}" for v in face.box) if face.box else "-"
        score = f"{face.score:.2f}" if face.score is not None else "-"
        lines.append(
            f"{i:>3} {box:<24} {score:>5} "
            f"{face.emotion + f' {face.emotions[face.emotion]:.2f}':<16} {face.age:>5.1f} "
            f"{face.gender + f' {face.genders[face.gender]:.2f}':<13} "
            f"{face.ethnicity} {face.ethnicities[face.ethnicity]:.2f}"
        )
    return "\n".join(lines)


def _analyzer(args: argparse.Namespace):
    from .analyzer import FaceAnalyzer
    from .weights import WeightsMismatchError, WeightsNotFoundError

    _check_device(args.device)
    try:
        flip = False if args.no_flip else None  # None: as the weights' config.json says
        return FaceAnalyzer(weights=args.weights, device=args.device, test_time_flip=flip)
    except (WeightsNotFoundError, WeightsMismatchError) as error:
        raise CliError(str(error)) from None


def _check_device(device: str | None) -> None:
    import torch

    if device is None or device == "cpu":
        return
    if not device.startswith("cuda"):
        raise CliError(f"unknown device {device!r}: use cpu or cuda")
    if not torch.cuda.is_available():
        raise CliError(f"--device {device}: CUDA is not available on this machine")


def _check_data_dir(data: str) -> None:
    missing = [name for name in ("ferplus", "utkface", "celeba_ids") if not (Path(data) / name).is_dir()]
    if missing:
        raise CliError(f"{data}: not the training data folder (missing {', '.join(missing)})")


def _analyze_command(args: argparse.Namespace) -> int:
    from .images import load_image

    # Read every image first so a bad file fails fast, before the model loads.
    images = [(path, load_image(path)) for path in args.images]
    analyzer = _analyzer(args)
    results = [(path, analyzer.analyze(image)) for path, image in images]
    if args.json:
        payload = [{"image": path, "faces": [f.to_dict() for f in faces]} for path, faces in results]
        print(json.dumps(payload))
    else:
        print("\n\n".join(_format_table(path, faces) for path, faces in results))
    return 0


def _video_command(args: argparse.Namespace) -> int:
    from .limits import current_limits
    from .video import analyze_video, check_limits, probe_video, write_annotated_video

    limits = current_limits()
    if args.max_duration is not None:
        limits = dataclasses.replace(limits, max_clip_seconds=args.max_duration if args.max_duration > 0 else math.inf)
    # Bad input fails fast, before the model loads.
    check_limits(probe_video(args.clip, limits), limits)
    analyzer = _analyzer(args)
    result = analyze_video(args.clip, analyzer, fps=args.fps, limits=limits, smoothing=args.smoothing)
    if args.out:
        write_annotated_video(args.clip, result, args.out)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(result.describe())
    return 0


def _train_command(args: argparse.Namespace) -> int:
    from .train import TrainSettings, train

    settings = TrainSettings.from_namespace(args)
    _check_data_dir(settings.data_dir)
    _check_device(settings.device)
    train(settings)
    return 0


def _eval_command(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_weights
    from .weights import WeightsMismatchError, WeightsNotFoundError

    _check_data_dir(args.data)
    _check_device(args.device)
    try:
        report = evaluate_weights(
            args.weights, data_dir=Path(args.data), cache_dir=Path(args.cache), device=args.device,
            pipeline=not args.no_pipeline, test_time_flip=False if args.no_flip else None,
        )
    except (WeightsNotFoundError, WeightsMismatchError) as error:
        raise CliError(str(error)) from None
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .limits import ENVIRONMENT
    from .video import DEFAULT_SMOOTHING

    parser = argparse.ArgumentParser(
        prog="face-mtl",
        description="Facial expression, age, gender, ethnicity and identity from one lightweight CNN.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def flip_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--no-flip", action="store_true",
                         help="skip the mirror-image pass (half the network cost, slightly less accurate)")

    def model_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--weights", help="weights folder, model.safetensors or Hub repo id (default: bundled)")
        sub.add_argument("--device", help="cpu or cuda (default: cuda when available)")

    analyze = commands.add_parser("analyze", help="analyze faces in images")
    analyze.add_argument("images", nargs="+", metavar="IMAGE")
    analyze.add_argument("--json", action="store_true", help="print one JSON list instead of tables")
    model_options(analyze)
    flip_option(analyze)
    analyze.set_defaults(handler=_analyze_command)

    video = commands.add_parser("video", help="track faces in a clip and time their emotions")
    video.add_argument("clip", metavar="CLIP")
    video.add_argument("--fps", type=float, help="frames sampled per second (default: automatic)")
    video.add_argument("--json", action="store_true", help="print the result as JSON")
    video.add_argument("--out", help="write an annotated mp4 here")
    video.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING,
                       help=f"seconds of centred smoothing of emotion probabilities; 0 = none (default: {DEFAULT_SMOOTHING:g})")
    video.add_argument("--max-duration", type=float,
                       help="refuse longer clips, in seconds; 0 = no limit "
                       f"(default: ${ENVIRONMENT['max_clip_seconds']}, else 60)")
    model_options(video)
    flip_option(video)
    video.set_defaults(handler=_video_command)

    from .train import add_train_arguments

    train = commands.add_parser("train", help="train the multi-task network (see MODEL_CARD.md)")
    add_train_arguments(train)
    train.set_defaults(handler=_train_command)

    evaluate = commands.add_parser("eval", help="evaluate weights on the validation splits (JSON)")
    evaluate.add_argument("--data", default="../shared/data", help="data folder (default ../shared/data)")
    evaluate.add_argument("--cache", default=".cache", help="crop cache folder (default .cache)")
    evaluate.add_argument("--out", help="also write the JSON report here")
    evaluate.add_argument("--no-pipeline", action="store_true",
                          help="skip the whole-pipeline check (FER+ via predict_crops, UTKFace via analyze)")
    model_options(evaluate)
    flip_option(evaluate)
    evaluate.set_defaults(handler=_eval_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import FaceMTLInputError
    from .limits import current_limits

    args = build_parser().parse_args(argv)
    try:
        try:
            current_limits()
        except ValueError as error:  # a FACE_MTL_MAX_* variable that is not a positive number
            raise CliError(str(error)) from None
        return args.handler(args)
    except (CliError, FaceMTLInputError) as error:
        print(f"face-mtl: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("face-mtl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
