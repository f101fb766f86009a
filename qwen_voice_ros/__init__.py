"""qwen_voice_ros: a ROS 2 voice stack for Chinese-speaking robots."""

__version__ = '0.1.0'
