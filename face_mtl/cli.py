"""The ``face-mtl`` command line: analyze, video, compare, people, train, eval, calibrate, identity-head,
attribute-heads, space (build and push a Hugging Face Space)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


def positive_int(text: str) -> int:
    """argparse type for counts: an integer of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type for rates: a finite number above 0."""
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type for loss weights: a finite number of 0 or more."""
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


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

    if args.out:
        return _analyze_collection(args)
    _refuse_collection_options(
        args, ("resume", "engine", "address", "num_cpus", "concurrency", "gpus_per_actor", "threads", "workers")
    )
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
    from .batch import FORMATS
    from .limits import current_limits
    from .video import analyze_video, check_limits, probe_video, write_annotated_video

    limits = current_limits()
    if args.max_duration is not None:
        limits = dataclasses.replace(limits, max_clip_seconds=args.max_duration if args.max_duration > 0 else math.inf)
    if args.out and Path(args.out).suffix.lower() in FORMATS:
        return _video_collection(args, limits.max_clip_seconds)
    _refuse_collection_options(args, ("resume",))
    if len(args.clips) != 1:
        raise CliError("give one clip, or several clips and folders with --out results.jsonl|.csv|.parquet")
    args.clip = args.clips[0]
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


COMPARE_JSON_FIELDS = ("similarity", "same_person", "threshold", "matrix", "faces_a", "faces_b")


def _format_matrix(matrix) -> str:
    columns = [f"B{j}" for j in range(1, len(matrix[0]) + 1)]
    lines = ["similarity of every face pair (faces numbered largest first):",
             "     " + " ".join(f"{c:>6}" for c in columns)]
    for i, row in enumerate(matrix, 1):
        lines.append(f"{'A' + str(i):>4} " + " ".join(f"{v:>6.2f}" for v in row))
    return "\n".join(lines)


def _compare_command(args: argparse.Namespace) -> int:
    from .detect import DEFAULT_MIN_FACE_SIZE
    from .images import ImageLoadError, load_image
    from .types import NoFaceError

    images = []
    for path in (args.image_a, args.image_b):
        try:
            images.append(load_image(path))
        except ImageLoadError as error:
            raise CliError(str(error)) from None
    analyzer = _analyzer(args)
    try:
        result = analyzer.compare(*images)
    except NoFaceError as error:
        # The analyzer saw arrays: name the file the user gave.
        path = args.image_a if error.image == "image A" else args.image_b
        raise CliError(f"{path}: no face found (faces need to be at least about {DEFAULT_MIN_FACE_SIZE} "
                       "pixels tall and mostly frontal)") from None
    if args.json:
        payload = result.to_dict()
        print(json.dumps({key: payload[key] for key in COMPARE_JSON_FIELDS}))
        return 0
    verdict = "same person" if result.same_person else "different people"
    note = "" if result.threshold_source == "calibrated" else " (uncalibrated default; run face-mtl calibrate)"
    print(f"{verdict}: similarity {result.similarity:.3f}, threshold {result.threshold:.3f}{note}")
    if len(result.faces_a) > 1 or len(result.faces_b) > 1:
        print(f"(largest faces compared: {len(result.faces_a)} face(s) in {args.image_a}, "
              f"{len(result.faces_b)} in {args.image_b})")
        print(_format_matrix(result.matrix.tolist()))
    return 0


def _people_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .identity import grouping_threshold
    from .people import group_people, list_images, person_thumbnails, scan_faces

    folder = Path(args.folder)
    if not folder.is_dir():
        raise CliError(f"{folder}: not a folder")
    paths = list_images(folder)
    if not paths:
        raise CliError(f"{folder}: no images found (looked for jpg, jpeg, png, webp, bmp, tif, gif)")
    analyzer = _analyzer(args)
    scan = scan_faces(
        analyzer, paths, thumbnails=bool(args.sheets),
        progress=lambda items: tqdm(items, desc="finding faces", unit="img", file=sys.stderr),
    )
    # The cut depends on how many faces are grouped: bigger folders group best at a higher one.
    threshold, source = grouping_threshold(analyzer.config.verification, faces=len(scan.embeddings))
    if args.threshold is not None:
        threshold, source = args.threshold, "--threshold"
    for path, reason in scan.skipped:
        print(f"face-mtl: skipped {reason}" if reason.startswith(path) else f"face-mtl: skipped {path}: {reason}",
              file=sys.stderr)
    people = group_people(scan, threshold)
    records = [person.to_dict() for person in people]
    Path(args.out).write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
    if args.sheets:
        from PIL import Image

        from .render.identity import contact_sheet

        sheets = Path(args.sheets)
        sheets.mkdir(parents=True, exist_ok=True)
        for person in people:
            sheet = contact_sheet(person_thumbnails(scan, person),
                                  f"person {person.person}: {len(person.faces)} face(s)")
            Image.fromarray(sheet).save(sheets / f"person_{person.person:03d}.{args.sheet_format}")
    print(f"{len(scan.refs)} face(s) in {len(paths) - len(scan.skipped)} image(s) grouped into "
          f"{len(people)} people at similarity >= {threshold:.3f} ({source}); written to {args.out}"
          + (f"; contact sheets in {args.sheets}" if args.sheets else ""))
    return 0


# Collection options and their "not given" values: without --out they would be silently ignored.
_COLLECTION_DEFAULTS = {
    "resume": False, "engine": "local", "address": None, "num_cpus": None, "concurrency": None,
    "gpus_per_actor": None, "threads": None, "workers": None,
}  # fmt: skip


def _refuse_collection_options(args: argparse.Namespace, names: Sequence[str]) -> None:
    given = [name for name in names if getattr(args, name, None) != _COLLECTION_DEFAULTS[name]]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise CliError(f"{flags}: only with --out results.jsonl|.csv|.parquet")


def _analyze_collection(args: argparse.Namespace) -> int:
    from .batch import AnalyzerOptions, BatchError, discover, engine, output_format
    from .weights import WeightsMismatchError, WeightsNotFoundError

    if args.json:
        raise CliError("--json prints to the terminal; with --out the records go to the file")
    if args.engine == "local":
        if args.address or args.num_cpus or args.concurrency or args.gpus_per_actor:
            raise CliError("--address, --num-cpus, --concurrency and --gpus-per-actor are for --engine ray")
        _check_device(args.device)  # a Ray cluster's GPUs are checked on the cluster
        settings = {"batch_size": args.batch_size}
        settings.update({name: value for name, value in (("decode_threads", args.threads), ("workers", args.workers))
                         if value is not None})
    else:
        if args.threads or args.workers:
            raise CliError("--threads and --workers are for --engine local (Ray: --concurrency)")
        settings = {
            "address": args.address, "num_cpus": args.num_cpus, "concurrency": args.concurrency,
            "batch_size": args.batch_size, "gpus_per_actor": args.gpus_per_actor,
        }  # fmt: skip
    options = AnalyzerOptions(weights=args.weights, device=args.device, test_time_flip=False if args.no_flip else None)
    try:
        output_format(args.out)
        chosen = engine(args.engine, **settings)
        paths = discover(args.images)
        if not paths:
            raise CliError(f"no images found in {' '.join(args.images)}")
        summary = chosen.run(paths, Path(args.out), options, resume=args.resume)
    except (BatchError, WeightsNotFoundError, WeightsMismatchError) as error:
        raise CliError(str(error)) from None
    print(f"face-mtl: {summary.describe('images')} -> {args.out}", file=sys.stderr)
    return 0


def _video_collection(args: argparse.Namespace, max_duration: float | None) -> int:
    from .batch import VIDEO_EXTENSIONS, BatchError, discover, run_clips

    if args.json:
        raise CliError("--json prints to the terminal; with --out the records go to the file")
    paths = discover(args.clips, VIDEO_EXTENSIONS)
    if not paths:
        raise CliError(f"no clips found in {' '.join(args.clips)}")
    analyzer = _analyzer(args)
    try:
        summary = run_clips(
            paths, Path(args.out), analyzer, resume=args.resume,
            fps=args.fps, smoothing=args.smoothing, max_duration=max_duration,
        )  # fmt: skip
    except BatchError as error:
        raise CliError(str(error)) from None
    print(f"face-mtl: {summary.describe('clips')} -> {args.out}", file=sys.stderr)
    return 0


def _space_build_command(args: argparse.Namespace) -> int:
    from .space import SpaceError, build_space

    try:
        build = build_space(args.out, hub_repo=args.hub_repo, hub_revision=args.hub_revision)
    except SpaceError as error:
        raise CliError(str(error)) from None
    print(json.dumps(build.to_dict()))
    print(f"face-mtl: Space folder {build.folder}: {len(build.files)} files, "
          f"{build.total_bytes / 1e6:.1f} MB, {build.weights} weights", file=sys.stderr)
    return 0


def _space_push_command(args: argparse.Namespace) -> int:
    from .space import SpaceError, push_space

    try:
        url = push_space(args.folder, args.repo_id, private=args.private)
    except SpaceError as error:
        raise CliError(str(error)) from None
    print(f"face-mtl: pushed {args.folder} to https://huggingface.co/spaces/{args.repo_id} ({url})",
          file=sys.stderr)
    return 0


def _train_command(args: argparse.Namespace) -> int:
    from .data.sets import crop_cache_complete
    from .train import TrainSettings, train

    settings = TrainSettings.from_namespace(args)
    if not crop_cache_complete(Path(settings.cache_dir), settings.input_size):
        _check_data_dir(settings.data_dir)
    _check_device(settings.device)
    train(settings)
    return 0


def _rewrite_heads(args: argparse.Namespace, folders: list[str], refit: Callable[[], dict]) -> int:
    """What the commands that refit heads of weights folders share: check the data, the device
    and ``folders``, run ``refit`` (which writes the weights), print its summary as JSON."""
    from .weights import WeightsMismatchError, WeightsNotFoundError

    _check_data_dir(args.data)
    _check_device(args.device)
    for folder in folders:
        if not Path(folder).is_dir():
            raise CliError(f"{folder}: no such weights folder")
    try:
        summary = refit()
    except (WeightsNotFoundError, WeightsMismatchError, ValueError) as error:
        raise CliError(str(error)) from None
    print(json.dumps(summary, indent=2))
    return 0


def _attribute_heads_command(args: argparse.Namespace) -> int:
    from .train.attribute_heads import refit_attribute_heads

    return _rewrite_heads(args, [args.weights, args.reference], lambda: refit_attribute_heads(
        args.weights, args.out or args.weights, args.reference, data_dir=Path(args.data), cache_dir=Path(args.cache),
        epochs=args.epochs, lr=args.lr, label_weight=args.label_weight, seed=args.seed, device=args.device or "cpu"))


def _identity_head_command(args: argparse.Namespace) -> int:
    from .train.refit import refit_identity_head

    return _rewrite_heads(args, [args.weights], lambda: refit_identity_head(
        args.weights, args.out or args.weights, data_dir=Path(args.data), cache_dir=Path(args.cache),
        device=args.device or "cpu", kind=args.head))


def _eval_command(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_weights
    from .model import RuntimeUnavailableError
    from .weights import WeightsMismatchError, WeightsNotFoundError

    _check_data_dir(args.data)
    _check_device(args.device)
    try:
        if args.utkface_groups:
            from .evaluate import evaluate_utkface_groups

            report = evaluate_utkface_groups(args.weights, data_dir=Path(args.data), cache_dir=Path(args.cache),
                                             device=args.device, runtime=args.runtime)
        else:
            report = evaluate_weights(
                args.weights, data_dir=Path(args.data), cache_dir=Path(args.cache), device=args.device,
                pipeline=not args.no_pipeline, test_time_flip=False if args.no_flip else None,
                inference_precision=args.precision, runtime=args.runtime,
            )
    except (WeightsNotFoundError, WeightsMismatchError, RuntimeUnavailableError) as error:
        raise CliError(str(error)) from None
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    if "computed_precision" in report and report["computed_precision"] != report["inference_precision"]:
        print(f"face-mtl: note: {report['inference_precision']} was asked for, but this CPU has no native "
              f"bfloat16: the figures were computed in {report['computed_precision']}", file=sys.stderr)
    return 0


def _calibrate_command(args: argparse.Namespace) -> int:
    from .evaluate import calibrate_weights
    from .weights import WeightsMismatchError, WeightsNotFoundError

    _check_data_dir(args.data)
    _check_device(args.device)
    try:
        calibration = calibrate_weights(args.weights, data_dir=Path(args.data), cache_dir=Path(args.cache),
                                        device=args.device)
    except (WeightsNotFoundError, WeightsMismatchError) as error:
        raise CliError(str(error)) from None
    print(json.dumps(calibration, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .batch import BATCH_SIZE, DECODE_THREADS, WORKERS
    from .config import RUNTIMES
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

    def collection_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--resume", action="store_true",
                         help="with --out: skip inputs already in the output file and add to it")

    analyze = commands.add_parser("analyze", help="analyze faces in images, or whole folders with --out")
    analyze.add_argument("images", nargs="+", metavar="INPUT",
                         help="image files; with --out also folders (recursive), globs and .txt lists of paths")
    analyze.add_argument("--json", action="store_true", help="print one JSON list instead of tables")
    analyze.add_argument("--out", help="write one record per image to results.jsonl, .csv or .parquet "
                         "(a bad file becomes an error record)")
    collection_options(analyze)
    analyze.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="with --out: this process (default) or a Ray Data pipeline (the [scale] extra)")
    analyze.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE,
                         help=f"with --out: images per network batch, per Ray actor call (default {BATCH_SIZE})")
    analyze.add_argument("--threads", type=positive_int,
                         help=f"local engine: threads decoding the next images (default {DECODE_THREADS})")
    analyze.add_argument("--workers", type=positive_int,
                         help=f"local engine: batches analysed at once, each on its share of the cores (default {WORKERS})")
    analyze.add_argument("--address", help="Ray engine: join this cluster (auto, HOST:6379, ray://HOST:10001); "
                         "default: start a local instance")
    analyze.add_argument("--num-cpus", type=positive_int, help="Ray engine: CPUs of the local instance (default: all)")
    analyze.add_argument("--concurrency", type=positive_int,
                         help="Ray engine: actors, each holding one model (default: one per GPU, else CPUs - 1)")
    analyze.add_argument("--gpus-per-actor", type=float,
                         help="Ray engine: GPU share per actor when the cluster has GPUs (default 1)")
    model_options(analyze)
    flip_option(analyze)
    analyze.set_defaults(handler=_analyze_command)

    video = commands.add_parser("video", help="track faces in a clip and time their emotions")
    video.add_argument("clips", nargs="+", metavar="CLIP",
                       help="a clip; with --out results.jsonl|.csv|.parquet also several, folders, globs")
    video.add_argument("--fps", type=float, help="frames sampled per second (default: automatic)")
    video.add_argument("--json", action="store_true", help="print the result as JSON")
    video.add_argument("--out", help="an annotated .mp4 of the clip, or results.jsonl|.csv|.parquet: "
                       "one record per clip")
    collection_options(video)
    video.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING,
                       help=f"seconds of centred smoothing of emotion probabilities; 0 = none (default: {DEFAULT_SMOOTHING:g})")
    video.add_argument("--max-duration", type=float,
                       help="refuse longer clips, in seconds; 0 = no limit "
                       f"(default: ${ENVIRONMENT['max_clip_seconds']}, else 60)")
    model_options(video)
    flip_option(video)
    video.set_defaults(handler=_video_command)

    compare = commands.add_parser("compare", help="are the largest faces of two photos the same person?")
    compare.add_argument("image_a", metavar="A")
    compare.add_argument("image_b", metavar="B")
    compare.add_argument("--json", action="store_true",
                         help="print similarity, same_person, threshold, matrix, faces_a, faces_b as JSON")
    model_options(compare)
    flip_option(compare)
    compare.set_defaults(handler=_compare_command)

    people = commands.add_parser("people", help="group every face in a folder of photos by person")
    people.add_argument("folder", metavar="DIR", help="folder of photos (searched recursively)")
    people.add_argument("--out", default="people.json", help="JSON file of the groups (default people.json)")
    people.add_argument("--sheets", metavar="DIR", help="also write a contact sheet per person into DIR")
    people.add_argument("--sheet-format", choices=("png", "jpg"), default="png",
                        help="contact sheet image format (default png)")
    people.add_argument("--threshold", type=float,
                        help="group faces at this cosine similarity instead of the calibrated grouping threshold")
    model_options(people)
    flip_option(people)
    people.set_defaults(handler=_people_command)

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
    evaluate.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                          help="inference precision (default: as the weights' config.json says); bf16 "
                               "applies only on CPUs with native bfloat16, elsewhere fp32 is computed "
                               "and the report's computed_precision says so")
    evaluate.add_argument("--runtime", choices=RUNTIMES, default="auto",
                          help="CPU runtime in fp32 (default auto: ONNX Runtime where installed, else torch)")
    evaluate.add_argument("--utkface-groups", action="store_true",
                          help="only the UTKFace figures, overall and per gender, ethnicity and age band "
                               "(builds only that split's crops; the full report holds them too)")
    model_options(evaluate)
    flip_option(evaluate)
    evaluate.set_defaults(handler=_eval_command)

    calibrate = commands.add_parser(
        "calibrate", help="choose the same-person and grouping thresholds on held-out people; rewrites config.json")
    calibrate.add_argument("--weights", help="local weights folder to calibrate (default: the bundled face_mtl/assets)")
    calibrate.add_argument("--data", default="../shared/data", help="data folder (default ../shared/data)")
    calibrate.add_argument("--cache", default=".cache", help="crop cache folder (default .cache)")
    calibrate.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    calibrate.set_defaults(handler=_calibrate_command)

    from .train.embedding import HEADS

    refit = commands.add_parser(
        "identity-head", help="refit a weights folder's identity head (trained, PCA or LDA) on the training people")
    refit.add_argument("--weights", required=True, help="local weights folder")
    refit.add_argument("--out", help="write the refitted weights here (default: rewrite --weights)")
    refit.add_argument("--head", choices=("best", *HEADS), default="best",
                       help="head to keep (default best: whichever verifies the held-out CelebA people best)")
    refit.add_argument("--data", default="../shared/data", help="data folder (default ../shared/data)")
    refit.add_argument("--cache", default=".cache", help="crop cache folder (default .cache)")
    refit.add_argument("--device", help="cpu or cuda (default cpu)")
    refit.set_defaults(handler=_identity_head_command)

    attributes = commands.add_parser(
        "attribute-heads",
        help="refit a weights folder's age, gender and ethnicity heads on its frozen backbone "
             "towards a reference's predictions")
    attributes.add_argument("--weights", required=True, help="local weights folder")
    attributes.add_argument("--reference", required=True,
                            help="local weights folder whose predictions on the training faces are the targets")
    attributes.add_argument("--out", help="write the refitted weights here (default: rewrite --weights)")
    attributes.add_argument("--epochs", type=positive_int, default=4, help="passes over the training faces (default 4)")
    attributes.add_argument("--lr", type=positive_float, default=1e-3, help="Adam learning rate (default 1e-3)")
    attributes.add_argument("--label-weight", type=non_negative_float, default=0.0,
                            help="weight of the UTKFace label losses beside the reference's (default 0; "
                                 "cross-entropy without training's label smoothing)")
    attributes.add_argument("--seed", type=int, default=0, help="shuffling seed (default 0)")
    attributes.add_argument("--data", default="../shared/data", help="data folder (default ../shared/data)")
    attributes.add_argument("--cache", default=".cache", help="crop cache folder (default .cache)")
    attributes.add_argument("--device", help="cpu or cuda (default cpu)")
    attributes.set_defaults(handler=_attribute_heads_command)

    space = commands.add_parser("space", help="build a Hugging Face Space folder, or push one")
    space_commands = space.add_subparsers(dest="space_command", required=True)
    space_build = space_commands.add_parser(
        "build", help="write the Space folder: app, runtime package, weights, examples, README, .gitattributes")
    space_build.add_argument("out", help="the folder to write (new, empty, or an earlier build: replaced)")
    space_build.add_argument("--hub-repo", help="leave the weights out: the Space reads them from this Hub "
                                                "model repo (OWNER/NAME) instead")
    space_build.add_argument("--hub-revision", help="with --hub-repo: the commit hash or tag to pin")
    space_build.set_defaults(handler=_space_build_command)
    space_push = space_commands.add_parser(
        "push", help="create the Space if needed and upload a built folder ($HF_TOKEN: a write token)")
    space_push.add_argument("folder", help="a folder written by `face-mtl space build`")
    space_push.add_argument("--repo-id", required=True, help="the Space, USER/NAME")
    space_push.add_argument("--private", action="store_true", help="create the Space private")
    space_push.set_defaults(handler=_space_push_command)
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
