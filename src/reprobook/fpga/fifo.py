"""FIFO depths of the streaming design: an analytic bound off-board, and a token simulation.

In hls4ml's ``io_stream`` design every layer is a process that reads and writes pixels in
raster order through FIFOs. hls4ml gives each FIFO a whole feature map by default, which is
what makes a 240x152 ENet too large for the ZCU102 (see :mod:`reprobook.fpga.estimate`). Most
FIFOs need only a couple of words: their consumer reads every word as soon as it comes. The
exceptions are where two paths meet again. A residual block clones its input to a long path
(1x1 conv, 3x3 conv, 1x1 conv) and a short one (the 1x1 skip conv); the add reads both in
lockstep, so while the 3x3 conv's line buffer fills (about a row of pixels) the short path's
words wait in its FIFO. If that FIFO is too small the clone stops, the long path starves, and
the design deadlocks.

:func:`analytic_depths` bounds every FIFO from the order in which hls4ml's stream functions
read and write (their loops in ``nnet_utils``): it counts, for each word an image feeds in, how
many words every layer has written and read when every process runs as far as it can, and a
FIFO's depth is the most words it ever holds, plus one. hls4ml's own answer is its FIFO-depth
optimisation flow (``vivadoaccelerator:fifo_depth_optimization``): co-simulation in Vivado HLS
with deep FIFOs, then each depth set to the largest occupancy seen, plus one; it needs Vivado.

:func:`simulate` checks a set of depths: it runs every layer as a process over blocking FIFOs
of those depths, word by word, written from the same loops, and reports whether every image
word got through or the design deadlocked. A token model does not know cycles: the depths
bound what the design needs to finish, and ``SLACK`` words on every FIFO that holds a backlog
leave room for the pipeline latency of the processes on the other path, so that the clone is
not throttled.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

FIFO_MODES = ("default", "analytic", "cosim")
CHAIN_DEPTH = 2  # two words keep a one-word-per-cycle handshake going between two processes
SLACK = 32  # words added to every FIFO that must hold a backlog (see the module docstring)

_ONE_TO_ONE = ("Activation", "PointwiseConv2D", "BatchNormalization", "Dense")
_WINDOWED = ("Conv2D", "Pooling2D")
_KNOWN = ("Input", "Clone", "Merge", "Concatenate", "ZeroPadding2D", "Resize", *_ONE_TO_ONE,
          *_WINDOWED)  # fmt: skip


def _shape(variable) -> tuple[int, int]:
    """Pixels (rows, columns) of a channels-last stream variable."""
    shape = list(variable.shape)
    return (shape[0], shape[1]) if len(shape) == 3 else (1, shape[0] if len(shape) == 2 else 1)


def _graph(hls_model) -> list[dict]:
    """Each layer of a converted ``io_stream`` model: kind, input and output variable names,
    pixel shapes and the attributes that decide its reading order."""
    layers = []
    for layer in hls_model.get_layers():
        kind = layer.class_name
        if kind not in _KNOWN:
            raise ValueError(
                f"layer {layer.name!r} is a {kind}; the FIFO model knows only {', '.join(_KNOWN)}"
            )
        entry = {"name": layer.name, "kind": kind, "inputs": list(layer.inputs),
                 "outputs": list(layer.outputs)}  # fmt: skip
        if kind != "Input":
            entry["in_hw"] = _shape(layer.get_input_variable())
        entry["out_hw"] = _shape(layer.get_output_variable())
        if (
            kind in _WINDOWED
            and layer.get_attr("conv_implementation", "LineBuffer") != "LineBuffer"
        ):
            raise ValueError(f"layer {layer.name!r}: the FIFO model follows the line-buffer "
                             "implementation of convs and pools only")  # fmt: skip
        if kind in _WINDOWED:
            pads = ("pad_top", "pad_left", "pad_bottom", "pad_right")
            if any(layer.get_attr(p, 0) for p in pads):
                raise ValueError(f"layer {layer.name!r} pads inside the window; hls4ml's io_stream "
                                 "puts padding in a ZeroPadding2D layer")  # fmt: skip
            if kind == "Conv2D":
                window = (layer.get_attr("filt_height"), layer.get_attr("filt_width"))
            else:
                window = (layer.get_attr("pool_height"), layer.get_attr("pool_width"))
            entry["window"] = window
            entry["stride"] = (layer.get_attr("stride_height"), layer.get_attr("stride_width"))
        if kind == "ZeroPadding2D":
            entry["pad"] = (layer.get_attr("pad_top"), layer.get_attr("pad_left"))
        if kind == "PointwiseConv2D" and (
            layer.get_attr("stride_height", 1),
            layer.get_attr("stride_width", 1),
        ) != (1, 1):
            raise ValueError(f"layer {layer.name!r}: the FIFO model takes 1x1 convs of stride 1")
        if kind == "Concatenate" and layer.get_attr("axis", -1) not in (-1, 3):
            raise ValueError(f"layer {layer.name!r}: the FIFO model takes concatenations along "
                             "the channels (axis -1) only")  # fmt: skip
        layers.append(entry)
    return layers


def words_needed(layer: dict) -> np.ndarray:
    """For a one-input layer, the number of input words it has read when it writes each output
    word (in raster order), as hls4ml's stream loops do:

    - one-to-one layers (activations, 1x1 convs): word j after reading word j;
    - ``ZeroPadding2D``: padding words need nothing new, an inner word its own input word;
    - ``Conv2D`` and ``Pooling2D`` (line buffers): output (r, c) once the input pixel at the
      bottom-right of its window, (r s + k - 1, c s + k - 1), has been read;
    - ``Resize`` (nearest): a whole input row is read before the rows it is copied to."""
    kind = layer["kind"]
    out_h, out_w = layer["out_hw"]
    rows, cols = np.divmod(np.arange(out_h * out_w), out_w)
    if kind in _ONE_TO_ONE or kind == "Clone":
        return np.arange(1, out_h * out_w + 1)
    in_h, in_w = layer["in_hw"]
    if kind == "ZeroPadding2D":
        top, left = layer["pad"]
        inner = (rows >= top) & (rows < top + in_h) & (cols >= left) & (cols < left + in_w)
        return np.cumsum(inner)
    if kind in _WINDOWED:
        (k_h, k_w), (s_h, s_w) = layer["window"], layer["stride"]
        return (rows * s_h + k_h - 1) * in_w + cols * s_w + k_w - 1 + 1
    if kind == "Resize":
        return (rows // (out_h // in_h) + 1) * in_w
    raise ValueError(f"{kind} is not a one-input layer")


def _path_to_fork(name: str, producers: dict[str, dict]) -> tuple[str, list[dict]]:
    """Walk back from stream ``name`` through one-input layers to the clone it comes from:
    the clone's name and the layers in between, nearest the clone first."""
    path = []
    layer = producers[name]
    while layer["kind"] != "Clone":
        if layer["kind"] in ("Merge", "Concatenate", "Input"):
            raise ValueError(
                f"stream {name!r} reaches a merge without passing a clone: the FIFO model "
                f"handles a fork and its join with one-input layers in between only"
            )
        path.append(layer)
        layer = producers[layer["inputs"][0]]
    return layer["name"], path[::-1]


def occupancy(hls_model) -> dict[str, int]:
    """The most words each FIFO must hold for the design to finish one image, when every
    process runs as far as it can (keyed by the names hls4ml's layers use for their streams).

    - Where a clone feeds two paths that a merge joins, each clone word is followed through
      both paths; the merge reads its two inputs together (one iteration of a pipelined loop
      reads both or stalls), so the path that runs ahead holds the difference of the words
      the two paths have written.
    - Every other FIFO is read as soon as it is written: it holds one word at a time.
    - The model's output stream is the wrapper's ``out_local``, which the wrapper reads only
      once it has written the whole image in (its ``is_last`` flag passes from the first loop
      to the last): it holds what the design writes before the last input word."""
    layers = _graph(hls_model)
    producers = {name: layer for layer in layers for name in layer["outputs"]}
    by_name = {layer["name"]: layer for layer in layers}
    held = {name: 0 for name in producers}
    for merge in layers:
        if merge["kind"] not in ("Merge", "Concatenate"):
            continue
        (fork_a, path_a), (fork_b, path_b) = (
            _path_to_fork(name, producers) for name in merge["inputs"]
        )
        if fork_a != fork_b:
            raise ValueError(f"the inputs of {merge['name']!r} come from different clones")
        words = math.prod(by_name[fork_a]["out_hw"])
        written = []
        for path in (path_a, path_b):
            count = np.arange(words + 1)  # words the clone has written to this path
            for layer in path:
                count = np.searchsorted(words_needed(layer), count, "right")
            written.append(count)
        both = np.minimum(*written)  # words the merge has read from each input
        for name, count in zip(merge["inputs"], written, strict=True):
            held[name] = int((count - both).max())
    # the wrapper's output FIFO: words written after all but the last input word
    source = layers[0]
    n_in = math.prod(source["out_hw"])
    written = {source["outputs"][0]: np.array([n_in - 1])}
    for layer in layers[1:]:
        if layer["kind"] in ("Merge", "Concatenate"):
            count = np.minimum(*(written[name] for name in layer["inputs"]))
        else:
            count = np.searchsorted(words_needed(layer), written[layer["inputs"][0]], "right")
        written.update(dict.fromkeys(layer["outputs"], count))
    held[hls_model.outputs[0]] = int(written[hls_model.outputs[0]][0])
    return held


def analytic_depths(hls_model, slack: int = SLACK) -> dict[str, int]:
    """A depth for every FIFO of a converted model (see the module docstring): ``CHAIN_DEPTH``
    where words are read as they come; where a FIFO holds a backlog, the most words it holds
    plus one (room for the clone's next word, which it writes to both paths at once) plus
    ``slack``; for the wrapper's output FIFO, the words written before the image is in,
    plus one."""
    if not isinstance(slack, int) or slack < 0:
        raise ValueError(f"slack must be a non-negative int, got {slack!r}")
    output = hls_model.outputs[0]
    depths = {}
    for name, most in occupancy(hls_model).items():
        if name == output:
            depths[name] = max(CHAIN_DEPTH, most + 1)
        else:
            depths[name] = CHAIN_DEPTH if most <= 0 else max(CHAIN_DEPTH, most + 1 + slack)
    return depths


def set_depths(hls_model, depths: dict[str, int]) -> None:
    """Give the model's stream variables these depths: hls4ml writes them as ``#pragma HLS
    STREAM depth`` (the wrapper's ``in_local`` and ``out_local`` included)."""
    for name, variable in hls_model.output_vars.items():
        pragma = getattr(variable, "pragma", None)
        if isinstance(pragma, tuple) and pragma[0] == "stream":
            if name not in depths:
                raise ValueError(f"no depth given for stream {name!r}")
            depth = depths[name]
            if not isinstance(depth, int) or depth < 1:
                raise ValueError(f"depth of {name!r} must be a positive int, got {depth!r}")
            variable.pragma = ("stream", depth)


# -- token simulation -----------------------------------------------------------------------------


def _process(layer: dict) -> Iterator[tuple[str, tuple[str, ...]]]:
    """The reads ("r", streams) and writes ("w", streams) of one layer, in the order of its
    hls4ml stream loop (``nnet_utils``): ``conv_2d_cl``/``pooling2d_cl`` with line buffers,
    ``zeropad2d_cl``, ``resize_nearest``, ``clone_stream``, ``add``/``concatenate3d``. A step
    on two streams happens on both or waits: the clone writes its two copies, and a merge
    reads its two inputs, in one iteration of a pipelined loop."""
    kind, inputs, outputs = layer["kind"], tuple(layer["inputs"]), tuple(layer["outputs"])
    out_h, out_w = layer["out_hw"]
    if kind in ("Clone", "Merge", "Concatenate", *_ONE_TO_ONE):  # a word in, a word out
        for _ in range(out_h * out_w):
            yield "r", inputs
            yield "w", outputs
    elif kind == "ZeroPadding2D":
        (in_h, in_w), (top, left) = layer["in_hw"], layer["pad"]
        for row in range(out_h):
            for col in range(out_w):
                if top <= row < top + in_h and left <= col < left + in_w:
                    yield "r", inputs
                yield "w", outputs
    elif kind in _WINDOWED:
        (in_h, in_w), (k_h, k_w), (s_h, s_w) = layer["in_hw"], layer["window"], layer["stride"]
        for row in range(in_h):
            for col in range(in_w):
                yield "r", inputs
                if (row >= k_h - 1 and (row - k_h + 1) % s_h == 0 and (row - k_h + 1) // s_h < out_h
                        and col >= k_w - 1 and (col - k_w + 1) % s_w == 0
                        and (col - k_w + 1) // s_w < out_w):  # fmt: skip
                    yield "w", outputs
    elif kind == "Resize":
        in_h, in_w = layer["in_hw"]
        for _ in range(in_h):
            for _ in range(in_w):
                yield "r", inputs
            for _ in range(out_h // in_h * out_w):
                yield "w", outputs
    else:
        raise ValueError(f"no process for {kind}")


def output_words(hls_model) -> int:
    """Words (pixels) of the model's output stream: one image's ``out_local`` words."""
    return math.prod(_shape(hls_model.get_output_variables()[0]))


def reads_before_writes(layer: dict) -> list[int]:
    """Words read from the (first) input when each output word is written, from the layer's
    process: equal to :func:`words_needed` for one-input layers (a test ties the two)."""
    read, out = 0, []
    for action, _ in _process(layer):
        if action == "r":
            read += 1
        else:
            out.append(read)
    return out


def simulate(hls_model, depths: dict[str, int]) -> dict[str, object]:
    """Run one image through the design word by word with blocking FIFOs of ``depths`` (the
    AXI wrapper's loops included: in, then out once the whole image is in). Returns whether it
    finished, the words delivered, and on a deadlock which FIFOs were full or empty."""
    layers = _graph(hls_model)
    source, sink = layers[0]["outputs"][0], hls_model.outputs[0]
    n_in = math.prod(layers[0]["out_hw"])
    n_out = output_words(hls_model)
    missing = sorted({n for layer in layers for n in layer["outputs"]} - set(depths))
    if missing:
        raise ValueError(f"no depth given for streams: {missing}")
    if any(not isinstance(d, int) or d < 1 for d in depths.values()):
        raise ValueError("every depth must be a positive int")
    count = dict.fromkeys(depths, 0)
    state = {"in_done": False, "delivered": 0}

    def enqueue():
        for _ in range(n_in):
            yield "w", (source,)
        state["in_done"] = True

    def dequeue():
        while not state["in_done"]:
            yield "wait", ()
        for _ in range(n_out):
            yield "r", (sink,)
            state["delivered"] += 1

    processes = {"enqueue": enqueue(), "dequeue": dequeue()}
    processes.update({layer["name"]: _process(layer) for layer in layers[1:]})
    pending = {name: next(proc, None) for name, proc in processes.items()}
    while any(op is not None for op in pending.values()):
        progressed = False
        for name, proc in processes.items():
            op = pending[name]
            while op is not None:
                action, streams = op
                if action == "r" and all(count[s] > 0 for s in streams):
                    for s in streams:
                        count[s] -= 1
                elif action == "w" and all(count[s] < depths[s] for s in streams):
                    for s in streams:
                        count[s] += 1
                elif action == "wait" and state["in_done"]:
                    pass
                else:
                    break
                op = next(proc, None)
                progressed = True
            pending[name] = op
        if not progressed:
            blocked = {name: op for name, op in pending.items() if op is not None}
            return {"finished": False, "delivered": state["delivered"], "blocked": blocked,
                    "full": sorted(s for s, c in count.items() if c >= depths[s])}  # fmt: skip
    return {"finished": True, "delivered": state["delivered"], "blocked": {}, "full": []}
