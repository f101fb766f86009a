"""
``qwen-voice-dialect-llm``: the dialect and llm nodes in one process, sharing one model.

On a Jetson the hybrid dialect stage and the llm node would otherwise each load the Qwen
graph (CPU and GPU share one memory).  Here both lifecycle nodes live in one process on a
MultiThreadedExecutor (each node's callbacks stay mutually exclusive, the two nodes run
side by side), and both take their engine from :mod:`qwen_voice_ros.llm.engine_pool`: when
the dialect node's ``llm_model_dir``/``llm_provider`` name the llm node's ``onnx.model_dir``
/``onnx.provider``, one session is loaded and each node gets its own KV cache.

Parameters as usual: a params file with ``dialect:`` and ``llm:`` sections (node names are
``dialect`` and ``llm``; ``-r __ns:=/robot1`` moves both), e.g.::

    qwen-voice-dialect-llm --ros-args --params-file config/voice_stack.yaml --params-file my.yaml

``share_llm:=true`` on ``qwen-voice-stack`` / the launch file starts this instead of the two
separate processes.
"""
from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from qwen_voice_ros.nodes.dialect_node import DialectNode
from qwen_voice_ros.nodes.llm_node import LLMNode

NODE_CLASSES = (DialectNode, LLMNode)


def run_together(node_classes=NODE_CLASSES, args=None, num_threads: int = 4) -> None:
    """Spin ``node_classes`` in one process until shutdown, then tear each down."""
    rclpy.init(args=args)
    nodes = []
    executor = MultiThreadedExecutor(num_threads=num_threads)
    try:
        for node_class in node_classes:
            nodes.append(node_class())
            executor.add_node(nodes[-1])
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        # Reverse order: the llm node (started last) releases its engine handle first; the
        # model is freed by the last node's cleanup.
        for node in reversed(nodes):
            try:
                node._teardown()
            finally:
                node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


def main(args=None):
    run_together(NODE_CLASSES, args)


if __name__ == '__main__':
    main()
