#!/usr/bin/env python3
"""Check crates/thisthat-local/model/efficientnet_lite0.onnx on the sample photos.

    pip install numpy onnxruntime pillow          # (optional: tract==0.23.9)
    python tools/efficientnet/verify.py [--photos DIR] [--model FILE] [--tract] [--pil-resize]

Applies the same preprocessing the Rust side must apply (README.md):

  1. decode, convert to 8-bit RGB (alpha dropped);
  2. resize so the SHORTER side is 256 px, the other side
     round(side * 256 / shorter) (round half away from zero), with the
     `image` crate's `FilterType::Triangle` (0.25's `imageops::resize`,
     emulated here in numpy so the numbers match the Rust program);
  3. centre-crop 224x224 at ((w - 224) / 2, (h - 224) / 2), integer division;
  4. x = (pixel - 127) / 128 per channel, RGB order, NCHW [1, 3, 224, 224] float32.

Prints the top-3 classes for each photo, and compares against the figures
recorded in shared/spec/emulators.md; exits 1 on a mismatch larger than 0.015.
With --tract it also runs the model through tract 0.23 (the PyPI `tract`
bindings, the same engine as the `tract-onnx` crate) and compares the outputs.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "crates" / "thisthat-local" / "model"

RESIZE_SHORT = 256
CROP = 224
MEAN = 127.0
STD = 128.0

# Recorded in shared/spec/emulators.md ("Offline classification").
EXPECTED = {
    "chelsea.png": [("tiger cat", 0.39), ("Egyptian cat", 0.36), ("tabby", 0.16)],
    "coffee.png": [("espresso", 0.95)],
    "rocket.jpg": [("missile", 0.36)],
}
TOLERANCE = 0.015


# ---- the `image` crate's resize (0.25, imageops::sample::resize), in numpy ----


def _triangle(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return np.where(a < 1.0, 1.0 - a, 0.0).astype(np.float32)


def _weights(n_in: int, n_out: int) -> np.ndarray:
    """Row o holds the normalised Triangle weights of output sample o."""
    support = np.float32(1.0)
    ratio = np.float32(n_in) / np.float32(n_out)
    sratio = max(ratio, np.float32(1.0))
    src_support = support * sratio
    w = np.zeros((n_out, n_in), np.float32)
    for o in range(n_out):
        centre = (np.float32(o) + np.float32(0.5)) * ratio
        left = int(min(max(math.floor(centre - src_support), 0), n_in - 1))
        right = int(min(max(math.ceil(centre + src_support), left + 1), n_in))
        centre = centre - np.float32(0.5)
        idx = np.arange(left, right, dtype=np.float32)
        k = _triangle((idx - centre) / sratio)
        w[o, left:right] = k / k.sum()
    return w


def resize_triangle(rgb: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """Vertical pass then horizontal pass in f32, rounded and clamped to u8 at the end."""
    h, w, _ = rgb.shape
    if (new_w, new_h) == (w, h):
        return rgb.copy()
    tmp = np.einsum("oh,hwc->owc", _weights(h, new_h), rgb.astype(np.float32))
    out = np.einsum("ow,hwc->hoc", _weights(w, new_w), tmp)
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


# ---- preprocessing ----


def resized_dims(w: int, h: int) -> tuple[int, int]:
    short = min(w, h)
    return (
        int(math.floor(w * RESIZE_SHORT / short + 0.5)),
        int(math.floor(h * RESIZE_SHORT / short + 0.5)),
    )


def preprocess(path: Path, pil_resize: bool = False) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    nw, nh = resized_dims(*img.size)
    if pil_resize:
        rgb = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    else:
        rgb = resize_triangle(np.asarray(img), nw, nh)
    x0, y0 = (nw - CROP) // 2, (nh - CROP) // 2
    rgb = rgb[y0 : y0 + CROP, x0 : x0 + CROP]
    x = (rgb.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=MODEL_DIR / "efficientnet_lite0.onnx")
    ap.add_argument("--classes", type=Path, default=MODEL_DIR / "classes.txt")
    ap.add_argument("--photos", type=Path, default=REPO_ROOT.parent / "shared" / "photos")
    ap.add_argument("--tract", action="store_true", help="also run through tract 0.23 (PyPI `tract`)")
    ap.add_argument("--pil-resize", action="store_true",
                    help="resize with Pillow's BILINEAR instead of the image-crate emulation")
    args = ap.parse_args(argv)

    import onnxruntime as ort

    names = args.classes.read_text(encoding="utf-8").splitlines()
    assert len(names) == 1000, len(names)
    sess = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    out = sess.get_outputs()[0]
    print(f"model {args.model} ({args.model.stat().st_size} bytes): "
          f"{inp.name} {inp.shape} {inp.type} -> {out.name} {out.shape} {out.type}")

    runnable = None
    if args.tract:
        import tract

        runnable = tract.onnx().load(str(args.model)).into_model().into_runnable()
        print(f"tract {tract.version()} loaded the model")

    ok = True
    for fname in sorted(EXPECTED):
        path = args.photos / fname
        x = preprocess(path, args.pil_resize)
        probs = sess.run([out.name], {inp.name: x})[0][0]
        top = np.argsort(-probs)[:3]
        line = ", ".join(f"{names[i]} {probs[i]:.3f}" for i in top)
        print(f"{fname}: {line}  (sum {probs.sum():.4f})")
        for rank, (want_name, want_p) in enumerate(EXPECTED[fname]):
            got_name, got_p = names[top[rank]], float(probs[top[rank]])
            if got_name != want_name or abs(got_p - want_p) > TOLERANCE:
                print(f"  MISMATCH at rank {rank + 1}: expected {want_name} {want_p:.2f}, "
                      f"got {got_name} {got_p:.3f}")
                ok = False
        if runnable is not None:
            tp = runnable.run([x])[0].to_numpy()[0]
            diff = float(np.abs(tp - probs).max())
            tt = np.argsort(-tp)[:3]
            print(f"  tract: " + ", ".join(f"{names[i]} {tp[i]:.3f}" for i in tt)
                  + f"  (max |tract - onnxruntime| = {diff:.2e})")
            if diff > 1e-3 or list(tt) != list(top):
                print("  MISMATCH between tract and onnxruntime")
                ok = False
    print("OK: matches the recorded figures" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
