"""asr capability (no rclpy imports)."""
