"""A tiny rclpy node for the replay tests: republish std_msgs/String from one topic to another.

    python test/replay_echo.py IN:OUT [IN:OUT ...] [--stamp] [--ros-args ...]

With ``--stamp`` it appends ``|<node clock ns>`` to each echoed string, so a test can see which
clock the node ran on (with ``-p use_sim_time:=true`` that is the replayer's /clock).
"""
import sys

import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.utilities import remove_ros_args
from std_msgs.msg import String


def main():
    argv = remove_ros_args(sys.argv)[1:]
    stamp = '--stamp' in argv
    pairs = [a.split(':', 1) for a in argv if not a.startswith('--')]
    rclpy.init(args=sys.argv)
    node = rclpy.create_node('replay_echo')
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    for in_topic, out_topic in pairs:
        pub = node.create_publisher(String, out_topic, qos)

        def on_msg(msg, pub=pub):
            text = msg.data
            if stamp:
                text += '|%d' % node.get_clock().now().nanoseconds
            pub.publish(String(data=text))

        node.create_subscription(String, in_topic, on_msg, qos)
    print('ready', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == '__main__':
    main()
