"""replay capability (no rclpy imports)."""
