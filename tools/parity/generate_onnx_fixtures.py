"""Reference ONNX models for peft-ts's hand-written encoder (src/engine/onnx/proto.ts).

Made with the official Python packages, pinned:
    onnx==1.23.1  onnxruntime==1.30.0  (numpy 2.4.6, protobuf 7.36.2, Python 3.11.7)
installed in their own venv, tools/parity/.venv-onnx (git-ignored; the torch venv .venv does not need them):

    python3 -m venv tools/parity/.venv-onnx
    tools/parity/.venv-onnx/bin/python -m pip install onnx==1.23.1 onnxruntime==1.30.0
    tools/parity/.venv-onnx/bin/python tools/parity/generate_onnx_fixtures.py

Writes test/fixtures/onnx/<case>.onnx (ModelProto.SerializeToString()) and test/fixtures/onnx/cases.json (inputs
and the outputs onnxruntime computes on the CPU). test/engine/onnx/proto.test.ts builds the same graphs with
encodeModel, requires byte-identical models, and runs them through OrtGraph against the recorded outputs.

Conventions the TypeScript side has to follow for identical bytes:
- onnx.helper.make_node writes attributes sorted by name, so the TS graphs list them in sorted order;
- node names are given explicitly (in `matmul` the TS side leaves it out to check its `${opType}_${index}` default);
- the default-domain opset import is written without a domain field (an OperatorSetIdProto with only `version`,
  as make_model itself does when no opset_imports are given). helper.make_opsetid('', 17) would set the proto2
  field explicitly and add two bytes (`0a 00`); peft-ts omits it. Both mean the default domain.

Deterministic: a second run writes the same bytes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test" / "fixtures" / "onnx"

F = TensorProto.FLOAT
I64 = TensorProto.INT64


def default_opset(version: int = 17) -> onnx.OperatorSetIdProto:
    # Only `version`: the default domain, written as make_model writes it when given no opset_imports.
    return onnx.OperatorSetIdProto(version=version)


def model(graph: onnx.GraphProto, opsets: list[onnx.OperatorSetIdProto]) -> onnx.ModelProto:
    m = helper.make_model(graph, ir_version=8, producer_name="peft-ts", opset_imports=opsets)
    onnx.checker.check_model(m, full_check=True)
    return m


def case_matmul():
    """MatMul with symbolic dims only; the TS side relies on its default node name."""
    g = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="MatMul_0")],
        "matmul",
        [helper.make_tensor_value_info("a", F, ["m", "k"]), helper.make_tensor_value_info("b", F, ["k", "n"])],
        [helper.make_tensor_value_info("y", F, ["m", "n"])],
    )
    rng = np.random.default_rng(1)
    inputs = {"a": rng.standard_normal((2, 3)).astype(np.float32), "b": rng.standard_normal((3, 4)).astype(np.float32)}
    return model(g, [default_opset()]), inputs


def case_fused_matmul():
    """com.microsoft FusedMatMul: INT transA/transB, FLOAT alpha; two opset imports."""
    g = helper.make_graph(
        [
            helper.make_node(
                "FusedMatMul", ["a", "b"], ["y"], name="fused", domain="com.microsoft", alpha=0.5, transA=0, transB=1
            )
        ],
        "fused_matmul",
        [helper.make_tensor_value_info("a", F, ["m", "k"]), helper.make_tensor_value_info("b", F, ["n", "k"])],
        [helper.make_tensor_value_info("y", F, ["m", "n"])],
    )
    rng = np.random.default_rng(2)
    inputs = {"a": rng.standard_normal((3, 2)).astype(np.float32), "b": rng.standard_normal((4, 2)).astype(np.float32)}
    return model(g, [default_opset(), helper.make_opsetid("com.microsoft", 1)]), inputs


def case_transpose_slice_pad():
    """Transpose (INTS perm), Slice with named int64 initializers (negative values too), Pad (STRING mode)."""
    inits = [
        numpy_helper.from_array(np.array([1, 0], dtype=np.int64), "starts"),
        numpy_helper.from_array(np.array([3, -1], dtype=np.int64), "ends"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes"),
        numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 1], dtype=np.int64), "pads"),
    ]
    g = helper.make_graph(
        [
            helper.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[0, 2, 1]),
            helper.make_node("Slice", ["t", "starts", "ends", "axes"], ["s"], name="slice"),
            helper.make_node("Pad", ["s", "pads"], ["y"], name="pad", mode="reflect"),
        ],
        "transpose_slice_pad",
        [helper.make_tensor_value_info("x", F, ["batch", 3, 4])],
        [helper.make_tensor_value_info("y", F, ["batch", 2, 4])],
        initializer=inits,
    )
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) * np.float32(0.5) - np.float32(3)
    return model(g, [default_opset()]), {"x": x}


def case_constants():
    """Constant with FLOATS value_floats, Constant with a TENSOR value, a float32 initializer."""
    g = helper.make_graph(
        [
            helper.make_node("Constant", [], ["c"], name="const_floats", value_floats=[0.5, -1.25, 0.1]),
            helper.make_node(
                "Constant",
                [],
                ["d"],
                name="const_tensor",
                value=numpy_helper.from_array(np.array([[1.0], [-2.0]], dtype=np.float32)),
            ),
            helper.make_node("Add", ["x", "c"], ["xc"], name="add"),
            helper.make_node("Mul", ["xc", "w"], ["xw"], name="mul"),
            helper.make_node("Add", ["xw", "d"], ["y"], name="add_d"),
        ],
        "constants",
        [helper.make_tensor_value_info("x", F, [2, 3])],
        [helper.make_tensor_value_info("y", F, [2, 3])],
        initializer=[numpy_helper.from_array(np.array([2.0, 0.3, -1.0], dtype=np.float32), "w")],
    )
    x = np.array([[0.25, -0.5, 1.5], [3.0, 0.0, -2.75]], dtype=np.float32)
    return model(g, [default_opset()]), {"x": x}


def case_reductions():
    """Fixed and symbolic dims mixed; negative INT (axis=-1) and INTS (axes=[-1]); int64 and rank-0 outputs."""
    g = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], name="mean", axes=[-1], keepdims=1),
            helper.make_node("Sub", ["x", "mean"], ["centered"], name="center"),
            helper.make_node("Softmax", ["centered"], ["probs"], name="softmax", axis=-1),
            helper.make_node("ArgMax", ["x"], ["idx"], name="argmax", axis=-1, keepdims=0),
            helper.make_node("ReduceMean", ["x"], ["total"], name="total", keepdims=0),
        ],
        "reductions",
        [helper.make_tensor_value_info("x", F, [2, "k"])],
        [
            helper.make_tensor_value_info("probs", F, [2, "k"]),
            helper.make_tensor_value_info("idx", I64, [2]),
            helper.make_tensor_value_info("total", F, []),
        ],
    )
    x = np.array([[0.5, 2.0, -1.0, 0.25, 1.0], [-3.0, 0.0, 4.5, 1.5, 4.0]], dtype=np.float32)
    return model(g, [default_opset()]), {"x": x}


CASES = {
    "matmul": case_matmul,
    "fused_matmul": case_fused_matmul,
    "transpose_slice_pad": case_transpose_slice_pad,
    "constants": case_constants,
    "reductions": case_reductions,
}


def to_json(a: np.ndarray) -> dict:
    if a.dtype == np.float32:
        dtype, data = "float32", [float(v) for v in a.reshape(-1)]
    elif a.dtype == np.int64:
        dtype, data = "int64", [int(v) for v in a.reshape(-1)]
    else:
        raise TypeError(a.dtype)
    return {"dtype": dtype, "dims": list(a.shape), "data": data}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    cases = {}
    for name in CASES:
        m, inputs = CASES[name]()
        data = m.SerializeToString()
        (OUT / f"{name}.onnx").write_bytes(data)
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        out_names = [o.name for o in sess.get_outputs()]
        outputs = sess.run(out_names, inputs)
        cases[name] = {
            "file": f"{name}.onnx",
            "bytes": len(data),
            "inputs": {k: to_json(v) for k, v in inputs.items()},
            "outputs": {k: to_json(np.asarray(v)) for k, v in zip(out_names, outputs)},
        }
    doc = {
        "versions": {
            "python": sys.version.split()[0],
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
        },
        "command": "tools/parity/.venv-onnx/bin/python tools/parity/generate_onnx_fixtures.py",
        "cases": cases,
    }
    (OUT / "cases.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
