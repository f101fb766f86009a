"""Thin rclpy wrappers: parameters in, topics in/out."""
