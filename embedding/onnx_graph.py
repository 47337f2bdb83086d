"""The VGG16 embedder as one ONNX graph, built from the Keras weights (embedding/weights.py).

Why built here rather than exported by Keras (`model.export(format="onnx")`): Keras' export of
a TensorFlow model goes through tf2onnx, which needs TensorFlow to run, and the whole point is
that a query never imports it. The graph is small enough to write out: the same layers as
`embedding/model.py` builds in Keras, with the same preprocessing, in one place:

    rgb_uint8 (n, 224, 224, 3)      the decoded posters, bytes (embedding/images.py); any height and
                                    width of 32 px and up run, so a cached model can be checked on a
                                    64x64 test image in milliseconds (embedding/model_check.py)
    Cast, Gather [2, 1, 0], Sub     RGB -> BGR, ImageNet channel means subtracted (preprocess_input)
    Transpose -> NCHW               ONNX convolutions are channels-first
    13 x (Conv 3x3 + Relu), 5 x MaxPool 2x2    VGG16's convolutional base, Keras' kernels transposed
    ReduceMean over 7x7             -> "pooled" (n, 512): the `vgg16` vector before L2
    per style layer: mean, std      -> "<layer>_stats" (n, 2 * channels): the `vgg16_style` statistics

and two more outputs that cost nothing unless asked for: "block5_pool" (n, 7, 7, 512), the grid
the similarity maps decompose a score over (search/explain.py), and "block4_pool"
(n, 14, 14, 512). L2 normalisation is left to embedding/vectors.py, shared with Keras, so both
runtimes post-process identically. tests/test_onnx.py checks the vectors against Keras.
"""

from __future__ import annotations

import numpy as np

from .spec import STYLE_LAYERS
from .weights import ConvLayer

OPSET = 17
INPUT = "rgb_uint8"
POOLED = "pooled"
GRID = "block5_pool"  # (n, 7, 7, 512), channels last as in Keras
BLOCK4 = "block4_pool"  # (n, 14, 14, 512)
_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)  # as embedding/model.py


def stats_output(layer: str) -> str:
    return f"{layer}_stats"


def vgg16_graph(layers: list[ConvLayer]):
    """The ONNX ModelProto of the embedder with these weights: posters are 224x224 (the spec's
    input_size), but height and width are left free, for the check's small test image."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = (
        [],
        [
            numpy_helper.from_array(np.array([2, 1, 0], np.int64), "bgr_order"),
            numpy_helper.from_array(_BGR_MEANS, "bgr_means"),
        ],
    )
    nodes += [
        helper.make_node("Cast", [INPUT], ["rgb_float"], to=TensorProto.FLOAT),
        helper.make_node("Gather", ["rgb_float", "bgr_order"], ["bgr"], axis=3),
        helper.make_node("Sub", ["bgr", "bgr_means"], ["preprocessed"]),
        helper.make_node("Transpose", ["preprocessed"], ["x0"], perm=[0, 3, 1, 2]),
    ]
    outputs: list[tuple[str, list[str | int]]] = [(POOLED, ["n", 512])]
    current = "x0"
    for i, layer in enumerate(layers):
        kernel = np.ascontiguousarray(layer.kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        initializers += [numpy_helper.from_array(kernel, f"{layer.name}_W"), numpy_helper.from_array(layer.bias, f"{layer.name}_b")]
        nodes += [
            helper.make_node(
                "Conv", [current, f"{layer.name}_W", f"{layer.name}_b"], [f"{layer.name}_linear"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]
            ),
            helper.make_node("Relu", [f"{layer.name}_linear"], [layer.name]),
        ]
        current = layer.name
        if layer.name in STYLE_LAYERS:  # per channel, over the image: mean and (population) standard deviation
            mean, name = f"{layer.name}_mean", layer.name
            nodes += [
                helper.make_node("ReduceMean", [name], [f"{mean}_kept"], axes=[2, 3], keepdims=1),
                helper.make_node("Sub", [name, f"{mean}_kept"], [f"{name}_centred"]),
                helper.make_node("Mul", [f"{name}_centred", f"{name}_centred"], [f"{name}_squared"]),
                helper.make_node("ReduceMean", [f"{name}_squared"], [f"{name}_variance"], axes=[2, 3], keepdims=0),
                helper.make_node("Sqrt", [f"{name}_variance"], [f"{name}_std"]),
                helper.make_node("ReduceMean", [name], [mean], axes=[2, 3], keepdims=0),
                helper.make_node("Concat", [mean, f"{name}_std"], [stats_output(name)], axis=1),
            ]
            outputs.append((stats_output(name), ["n", 2 * layer.kernel.shape[3]]))
        block = layer.name.split("_")[0]
        if i + 1 == len(layers) or not layers[i + 1].name.startswith(block + "_"):  # the block's last conv: 2x2 max-pool
            nodes.append(helper.make_node("MaxPool", [current], [f"{block}_pool_nchw"], kernel_shape=[2, 2], strides=[2, 2]))
            current = f"{block}_pool_nchw"
    nodes += [
        helper.make_node("ReduceMean", [current], [POOLED], axes=[2, 3], keepdims=0),
        helper.make_node("Transpose", [current], [GRID], perm=[0, 2, 3, 1]),
        helper.make_node("Transpose", ["block4_pool_nchw"], [BLOCK4], perm=[0, 2, 3, 1]),
    ]
    outputs += [(GRID, ["n", "grid_height", "grid_width", 512]), (BLOCK4, ["n", "block4_height", "block4_width", 512])]
    graph = helper.make_graph(
        nodes,
        "vgg16_embedder",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["n", "height", "width", 3])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in outputs],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="poster-search")
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read
    onnx.checker.check_model(model)
    return model
