#!/usr/bin/env python3
"""Would int8 weights bring the embedded models' memory down? (issue 15, goal 5; not part of CI)

    python3 -m venv /tmp/qvenv
    /tmp/qvenv/bin/pip install numpy onnx onnxruntime pillow tract==0.23.9
    /tmp/qvenv/bin/python tools/quantize/trial.py [--out DIR]

For each committed model (crates/thisthat-local/model): widens its float16 weights back to
float32, quantises it with onnxruntime's `quantize_static` (QOperator format, so that tract
keeps the weights as int8: `QLinearConv` and `QLinearMatMul`, per-tensor, uint8 activations,
int8 weights, MinMax calibration), calibrating on the sample photos in
crates/thisthat-memory/photos (and open_nsfw's `skin_blobs`), each whole and in seeded random
crops. Then, each in a fresh process, tract 0.23.9 (the same engine as the `tract-onnx` crate,
through PyPI `tract`) loads and runs the float32 and the int8 model; the script prints the
time per photo and what the model adds to the process's peak and anonymous memory (VmHWM,
RssAnon) over a process that loads nothing, and how far the int8 answers move on other crops
of the same photos (other windows of images calibration saw whole, so the figures flatter
int8), in tract and in onnxruntime: EfficientNet-Lite0's top
class, open_nsfw's "not safe" probability. Results: docs/performance.md, "Where the memory goes".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools" / "efficientnet"))
sys.path.insert(0, str(REPO_ROOT / "tools" / "open_nsfw"))
MODELS = REPO_ROOT / "crates" / "thisthat-local" / "model"
PHOTOS = REPO_ROOT / "crates" / "thisthat-memory" / "photos"
NAMES = ("chelsea.png", "coffee.png", "rocket.jpg")
CALIBRATION_CROPS = 4  # per photo, besides the whole photo
HELD_OUT_CROPS = 5  # per photo, from another seed
TRACT_RUNS = 20  # every held-out crop


def photos() -> dict[str, np.ndarray]:
    import reference
    from PIL import Image

    found = {n: np.asarray(Image.open(PHOTOS / n).convert("RGB")) for n in NAMES}
    found["skin_blobs"] = reference.skin_blobs()
    return found


def efficientnet_input(rgb: np.ndarray) -> np.ndarray:
    import verify

    h, w, _ = rgb.shape
    nw, nh = verify.resized_dims(w, h)
    small = verify.resize_triangle(rgb, nw, nh)
    x0, y0 = (nw - verify.CROP) // 2, (nh - verify.CROP) // 2
    x = (small[y0 : y0 + verify.CROP, x0 : x0 + verify.CROP].astype(np.float32) - verify.MEAN) / verify.STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def open_nsfw_input(rgb: np.ndarray) -> np.ndarray:
    import reference

    return reference.preprocess(rgb)


# name: (committed file, input shape for tract, preprocessing)
KINDS = {
    "efficientnet_lite0": ("efficientnet_lite0.onnx", "1,3,224,224,f32", efficientnet_input),
    "open_nsfw": ("open_nsfw.onnx", "1,224,224,3,f32", open_nsfw_input),
}


def crops(rgb: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """`n` seeded crops, each 60–100% of each side, half of them mirrored."""
    rng = np.random.default_rng(seed)
    h, w, _ = rgb.shape
    out = []
    for _ in range(n):
        f = rng.uniform(0.6, 1.0)
        ch, cw = int(h * f), int(w * f)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        view = rgb[y : y + ch, x : x + cw]
        out.append(np.ascontiguousarray(view[:, ::-1] if rng.random() < 0.5 else view))
    return out


def widen(src: Path, dst: Path) -> None:
    """The committed model with each float16 initializer and its `Cast` folded into float32."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    kept = []
    for node in graph.node:
        source = inits.get(node.input[0]) if node.op_type == "Cast" else None
        if source is not None and source.data_type == TensorProto.FLOAT16:
            graph.initializer.remove(source)
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(source).astype(np.float32), node.output[0]))
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    onnx.save(model, str(dst))


def quantise(src: Path, dst: Path, calibration: list[np.ndarray]) -> None:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{name: x} for x in calibration])

        def get_next(self):
            return next(self.feeds, None)

    # Gemm would become com.microsoft's QGemm, which tract does not read.
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    op_types_to_quantize=["Conv", "MatMul"], per_channel=False,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def in_tract(model: str, shape: str, inputs: str) -> dict:
    """Runs `--child` in a fresh process: the model's load and runs, and the process's memory."""
    out = subprocess.run([sys.executable, __file__, "--child", model, shape, inputs],
                         check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def child(model: str, shape: str, inputs: str) -> None:
    import tract

    xs = np.load(inputs)
    started = time.perf_counter()
    outputs, runs = [], 0.0
    if model != "-":
        loaded = tract.onnx().load(model)
        loaded.set_input_fact(0, shape)
        runnable = loaded.into_model().into_runnable()
        loaded_at = time.perf_counter()
        for i in range(TRACT_RUNS):
            outputs.append(runnable.run([xs[i % len(xs)][None]])[0].to_numpy().tolist())
        runs = (time.perf_counter() - loaded_at) / TRACT_RUNS
    status = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(("VmHWM", "RssAnon"))}
    print(json.dumps({"load_s": time.perf_counter() - started - runs * TRACT_RUNS, "run_ms": runs * 1000,
                      "hwm_kib": status["VmHWM"], "anon_kib": status["RssAnon"], "outputs": outputs}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="where to keep the float32 and int8 models (default: a temporary folder)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    import onnxruntime as ort

    out = args.out or Path(tempfile.mkdtemp(prefix="thisthat-int8-"))
    out.mkdir(parents=True, exist_ok=True)
    images = photos()
    for kind, (file, shape, prepare) in KINDS.items():
        f32, int8 = out / f"{kind}.f32.onnx", out / f"{kind}.int8.onnx"
        widen(MODELS / file, f32)
        calibration = [prepare(v) for rgb in images.values() for v in [rgb, *crops(rgb, CALIBRATION_CROPS, 1)]]
        held_out = [prepare(v) for rgb in images.values() for v in crops(rgb, HELD_OUT_CROPS, 2)]
        quantise(f32, int8, calibration)
        inputs = out / f"{kind}.inputs.npy"
        np.save(inputs, np.concatenate(held_out[:TRACT_RUNS]))
        base = in_tract("-", shape, str(inputs))
        print(f"{kind}: float32 {f32.stat().st_size:,} bytes, int8 {int8.stat().st_size:,} bytes")
        in_tract_outputs = []
        for label, path in (("float32", f32), ("int8", int8)):
            r = in_tract(str(path), shape, str(inputs))
            in_tract_outputs.append(np.array(r["outputs"])[:, 0])
            print(f"  tract, {label}: load {r['load_s']:.2f} s, {r['run_ms']:.0f} ms per photo, "
                  f"peak +{(r['hwm_kib'] - base['hwm_kib']) / 1024:.1f} MiB, "
                  f"anonymous +{(r['anon_kib'] - base['anon_kib']) / 1024:.1f} MiB over a process without it")
        t32, t8 = in_tract_outputs
        if kind == "open_nsfw":
            print(f"  int8 vs float32 on {TRACT_RUNS} held-out crops (tract): \"not safe\" moves by "
                  f"up to {np.abs(t32[:, 1] - t8[:, 1]).max():.3f}")
        else:
            print(f"  int8 vs float32 on {TRACT_RUNS} held-out crops (tract): the same top class "
                  f"on {int((t32.argmax(1) == t8.argmax(1)).sum())}")
        sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (f32, int8)]
        name = sessions[0].get_inputs()[0].name
        answers = [[s.run(None, {name: x})[0][0] for s in sessions] for x in held_out]
        if kind == "open_nsfw":
            moved = [abs(float(a[1]) - float(b[1])) for a, b in answers]
            print(f"  int8 vs float32 on {len(held_out)} held-out crops (onnxruntime): \"not safe\" moves by "
                  f"up to {max(moved):.3f} (mean {np.mean(moved):.4f}); decision threshold 0.7")
        else:
            same = sum(int(np.argmax(a) == np.argmax(b)) for a, b in answers)
            print(f"  int8 vs float32 on {len(held_out)} held-out crops (onnxruntime): the same top class "
                  f"on {same}; top probability moves by up to {max(abs(float(a.max()) - float(b[np.argmax(a)])) for a, b in answers):.3f}")
    print(f"models in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
